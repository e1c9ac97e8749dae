package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
)

// GET /v1/orders/{id}?wait= answers when the order is finished, without the
// client polling.
func TestWaitForAnOrderToFinish(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, withCluster, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{Payment: providers.Faults{Latency: 200 * time.Millisecond}}})
		b.post(t, order("wait-1", "cust-1"))
		res := b.do(t, http.MethodGet, "/v1/orders/wait-1?wait=20s", nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		var o orders.Resource
		res.json(t, &o)
		require.Equal(t, "completed", o.Status, "the wait ends when the order is finished")

		// A finished order answers at once; so does a wait of 0s.
		res = b.do(t, http.MethodGet, "/v1/orders/wait-1?wait=30s", nil)
		require.Equal(t, http.StatusOK, res.status)
		res = b.do(t, http.MethodGet, "/v1/orders/wait-1?wait=0s", nil)
		require.Equal(t, http.StatusOK, res.status)

		// A wait that runs out answers with the order as it is.
		b.post(t, order("wait-2", "cust-1"))
		res = b.do(t, http.MethodGet, "/v1/orders/wait-2?wait=1ms", nil)
		require.Equal(t, http.StatusOK, res.status)

		for _, bad := range []string{"31s", "-1s", "soon"} {
			res = b.do(t, http.MethodGet, "/v1/orders/wait-1?wait="+bad, nil)
			require.Equal(t, http.StatusBadRequest, res.status, bad)
		}
		res = b.do(t, http.MethodGet, "/v1/orders/missing?wait=1s", nil)
		require.Equal(t, http.StatusNotFound, res.status)
		b.waitState(t, "wait-2", settle, "completed")
	})
}
