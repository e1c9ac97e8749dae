package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// requireCancelled requires a 202 answer to a cancel with the order, and
// whether it was a replay.
func requireCancelled(t *testing.T, res *response, replayed bool) orders.Resource {
	t.Helper()
	o := decode[orders.Resource](t, res, http.StatusAccepted)
	if replayed {
		require.Equal(t, "true", res.Header.Get(api.HeaderReplayed))
	} else {
		require.Empty(t, res.Header.Get(api.HeaderReplayed))
	}
	return o
}

func TestCancelPendingOrder(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("cancel-me")))

		o := requireCancelled(t, b.cancel("cancel-me"), false)
		require.Equal(t, "cancelled", o.Status)
		require.Equal(t, statemachine.OrderCancelled, o.State)
		require.Equal(t, "cancelled", b.order("cancel-me").Status)

		o = requireCancelled(t, b.cancel("cancel-me"), true)
		require.Equal(t, "cancelled", o.Status)

		requireProblem(t, b.cancel("no-such-order"), http.StatusNotFound)
		requireValidation(t, b.cancel("a!b"), "order_id")
	})
}

// An order whose step is running records the cancel; the worker acts on it
// at the step's next boundary.
func TestCancelRunningStep(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("cancel-running")))
		b.drive("cancel-running", "start")

		o := requireCancelled(t, b.cancel("cancel-running"), false)
		require.Equal(t, "running", o.Status)
		require.Equal(t, statemachine.OrderReserving, o.State)
		require.True(t, o.CancelRequested)

		o = requireCancelled(t, b.cancel("cancel-running"), true)
		require.True(t, o.CancelRequested)
	})
}

func TestCancelRefused(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("shipping")))
		require.Equal(t, statemachine.OrderShipping, b.drive("shipping", "start", "reserved", "charged"))
		b.create(orderBody(withID("completed")))
		require.Equal(t, statemachine.OrderCompleted, b.drive("completed", "start", "reserved", "charged", "shipped"))
		b.create(orderBody(withID("failed")))
		require.Equal(t, statemachine.OrderFailed, b.drive("failed", "start", "reserve_failed"))

		for id, status := range map[string]string{"shipping": "running", "completed": "completed", "failed": "failed"} {
			p := requireProblem(t, b.cancel(id), http.StatusConflict)
			require.Contains(t, p.Detail, b.order(id).State, id)
			require.Equal(t, status, b.order(id).Status, "a refused cancel changes nothing")
			require.False(t, b.order(id).CancelRequested)
		}
	})
}
