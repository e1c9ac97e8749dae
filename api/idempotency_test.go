package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
)

// A request that claimed an Idempotency-Key and wrote its order, but was cut
// off before it settled the key (a Redis restart, a crash), must not block
// the client's retry until the claim lapses: the retry is a replay.
func TestInterruptedKeyedRequestReplays(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		body := orderBody(withID("cut-off-1"))
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		var req orders.Request
		require.NoError(t, json.Unmarshal(raw, &req))

		// The first request claimed the key and created the order...
		outcome, _, err := b.store.BeginIdempotent(t.Context(), "k-cut-off", req.Fingerprint(), "cut-off-1", time.Minute)
		require.NoError(t, err)
		require.EqualValues(t, "new", outcome)
		first := b.create(body) // without a key: the order now exists
		require.Equal(t, "cut-off-1", first.OrderID)

		// ...and never settled the key. The retry is answered as a replay.
		res := b.post(body, api.HeaderIdempotencyKey, "k-cut-off")
		require.Equal(t, http.StatusAccepted, res.Code, "body: %s", res.Body)
		require.Equal(t, "true", res.Header.Get(api.HeaderReplayed))
		// The key is settled now: a different body is refused.
		other := b.post(orderBody(withID("cut-off-2")), api.HeaderIdempotencyKey, "k-cut-off")
		requireProblem(t, other, http.StatusUnprocessableEntity)

		// A claim whose order does not exist yet is still in flight.
		notYet := orderBody(withID("not-yet"))
		raw, err = json.Marshal(notYet)
		require.NoError(t, err)
		var nreq orders.Request
		require.NoError(t, json.Unmarshal(raw, &nreq))
		_, _, err = b.store.BeginIdempotent(t.Context(), "k-running", nreq.Fingerprint(), "not-yet", time.Minute)
		require.NoError(t, err)
		requireProblem(t, b.post(notYet, api.HeaderIdempotencyKey, "k-running"), http.StatusConflict)
	})
}
