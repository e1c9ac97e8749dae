package e2e

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// failCreateOnce makes the first write of an order (the pipeline running
// create.lua) fail without reaching Redis, as a connection reset would.
type failCreateOnce struct {
	sha  string
	done atomic.Bool
}

func (h *failCreateOnce) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *failCreateOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *failCreateOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			a := c.Args()
			if len(a) > 1 && fmt.Sprint(a[0]) == "evalsha" && fmt.Sprint(a[1]) == h.sha && h.done.CompareAndSwap(false, true) {
				err := errors.New("write: connection reset by peer")
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// FINDING, over HTTP: POST /v1/orders {order_id X, 4 items} is answered 503
// (the order's write failed after its first task was queued). The client
// sends X again with 1 item: 202. The worker (its wake path off, as when it
// is saturated) runs the refused request's task, whose hint carries the
// refused body: the payment provider charges 4 items for order X, whose
// record (and API answer) says 1.
func TestRefusedPostChargesTheNextOrderUnderItsID(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true})
		// The API process, on a connection of its own whose first order
		// write fails.
		src, err := os.ReadFile("../statemachine/scripts/create.lua")
		require.NoError(t, err)
		sum := sha1.Sum(src)
		conn, err := server.OpenRedis(r.URL, 16)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		conn.Client.AddHook(&failCreateOnce{sha: hex.EncodeToString(sum[:])})
		ac := server.APIConfig{Listen: "127.0.0.1:0", Logger: testLogger(t), Registry: fastOrderRegistry()}
		api, err := server.StartAPI(conn, ac, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = api.Shutdown(context.Background()) })
		b.api = api

		refused := order("X", "alice")
		refused.Items[0].Qty = 4
		res := b.do(t, http.MethodPost, "/v1/orders", refused)
		require.Equal(t, http.StatusServiceUnavailable, res.status, "body: %s", res.body)

		accepted := order("X", "alice")
		accepted.Items[0].Qty = 1
		o := b.post(t, accepted)
		require.Equal(t, int64(2499), o.AmountCents)

		// A worker whose wake path is off (a saturated worker leaves the
		// wake lists alone).
		pc := b.sim.HTTPConfig()
		pc.Timeout = 2 * time.Second
		prov, err := providers.NewHTTP(pc)
		require.NoError(t, err)
		wc := server.WorkerConfig{Concurrency: 4, TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
			ShutdownTimeout: time.Second, Registry: fastOrderRegistry(), Logger: testLogger(t)}
		wc.Engine.Lease, wc.Engine.ReaperInterval, wc.Engine.WakeWorkers = time.Second, 100*time.Millisecond, -1
		w, err := server.NewWorker(b.conn.Client, prov, wc, nil)
		require.NoError(t, err)
		require.NoError(t, w.Start())
		t.Cleanup(w.Shutdown)

		b.waitState(t, "X", 10*time.Second, statemachine.OrderCompleted)
		got := b.get(t, "X")
		require.Equal(t, int64(2499), got.AmountCents, "the order as the API shows it")
		entries, err := b.ledger.ForOrder(context.Background(), "X")
		require.NoError(t, err)
		for _, e := range entries {
			if e.Op == providers.OpCharge {
				require.Equal(t, got.AmountCents, e.AmountCents,
					"order X (%d cents, 1 item) was charged %d cents: the body of the POST answered 503", got.AmountCents, e.AmountCents)
			}
		}
	})
}
