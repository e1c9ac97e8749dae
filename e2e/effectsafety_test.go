package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The effect-safety suite over HTTP, against simulators as rude as real
// providers: keys held in progress past the worker's timeout, stray 401s
// and gateway 404s, refunds by key. Each of these ended an order wrongly
// before the fix (failed with the charge kept, stock leaked, refunded
// although it shipped).

// providerOfStep names the simulator a step calls.
func providerOfStep(step string) string {
	switch step {
	case statemachine.StepReserve:
		return providers.ProviderInventory
	case statemachine.StepShip:
		return providers.ProviderShipping
	}
	return providers.ProviderPayment
}

// The first attempt of the step times out on the worker's side while the
// provider still works on it; the retry under the same key is answered 409
// idempotency_key_in_use until the provider has applied it. The order must
// complete with one effect of each kind.
func TestInProgressKeyIsRetriedUntilTheProviderAnswers(t *testing.T) {
	t.Parallel()
	for _, step := range []string{statemachine.StepReserve, statemachine.StepCharge, statemachine.StepShip} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
				hold := providers.Faults{InProgressRate: 1, InProgressHold: 2 * time.Second}
				sim := providers.SimConfig{}
				switch providerOfStep(step) {
				case providers.ProviderInventory:
					sim.Inventory = hold
				case providers.ProviderShipping:
					sim.Shipping = hold
				default:
					sim.Payment = hold
				}
				b := setup(t, r, options{timeout: 200 * time.Millisecond, sim: sim})
				id := "inprogress-" + step
				b.post(t, order(id, "cust-1"))
				waitFor(t, settle, "a retry of the held key", func() bool { return b.get(t, id).Attempts[step] >= 2 })
				// New keys of this provider are no longer held; the held one
				// is applied when its hold ends.
				require.NoError(t, b.sim.Simulator().SetFaults(providerOfStep(step), providers.Faults{}))
				o := b.waitState(t, id, settle, statemachine.OrderCompleted, statemachine.OrderFailed)
				require.Equal(t, statemachine.OrderCompleted, o.State, "last error %q", o.LastError)
				b.requireEffects(t, id, map[string]int{"reserve": 1, "charge": 1, "ship": 1})
				saw409 := false
				for _, ev := range b.history(t, id) {
					saw409 = saw409 || strings.Contains(ev.Error, "idempotency_key_in_use")
				}
				require.True(t, saw409, "the provider answered 409 idempotency_key_in_use at least once")
			})
		})
	}
}

// A stray 401 (after a credential rotation) or a gateway's 404 applies
// nothing and says nothing: it is retried under the same key.
func TestStrayAnswersAreRetried(t *testing.T) {
	t.Parallel()
	for _, step := range []string{statemachine.StepReserve, statemachine.StepCharge, statemachine.StepShip} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
				b := setup(t, r, options{})
				stray := providers.Faults{StrayRate: 1}
				p := providerOfStep(step)
				require.NoError(t, b.sim.Simulator().SetFaults(p, stray))
				id := "stray-" + step
				b.post(t, order(id, "cust-1"))
				waitFor(t, settle, "stray answers to be retried", func() bool { return b.get(t, id).Attempts[step] >= 3 })
				o := b.get(t, id)
				require.Equal(t, step, map[string]string{"reserving": "reserve", "charging": "charge", "shipping": "ship"}[o.State],
					"still trying the step: a stray answer is no decline")
				require.NoError(t, b.sim.Simulator().SetFaults(p, providers.Faults{}))
				o = b.waitState(t, id, settle, statemachine.OrderCompleted, statemachine.OrderFailed)
				require.Equal(t, statemachine.OrderCompleted, o.State, "last error %q", o.LastError)
				b.requireEffects(t, id, map[string]int{"reserve": 1, "charge": 1, "ship": 1})
			})
		})
	}
}

// A compensation meets stray answers too: a 401 on the refund of a failed
// order is retried until the refund goes through; the customer is never
// left charged.
func TestStrayAnswerDuringCompensationIsRetried(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			// The shipment is refused, slowly enough to turn the strays on
			// for the compensation that follows.
			Shipping: providers.Faults{DeclineCustomers: []string{"far-away"}, Latency: 500 * time.Millisecond},
		}})
		b.post(t, order("stray-comp", "far-away"))
		b.waitState(t, "stray-comp", settle, statemachine.OrderShipping)
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{StrayRate: 1}))
		waitFor(t, settle, "refund retries", func() bool { return b.get(t, "stray-comp").Attempts["refund"] >= 2 })
		require.Equal(t, statemachine.OrderRefunding, b.get(t, "stray-comp").State, "a stray answer does not end the refund")
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{}))
		b.waitState(t, "stray-comp", settle, statemachine.OrderFailed)
		b.requireEffects(t, "stray-comp", map[string]int{"reserve": 1, "charge": 1, "refund": 1, "release": 1})
	})
}

// An order_id reused after its order expired is a new order with provider
// keys of its own ("<order_id>~2:<op>"). Before the fix the new order
// replayed the old order's answers and shipped on a released reservation.
func TestOrderIDReusedAfterRetention(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		const retention = 2 * time.Second
		b := setup(t, r, options{retention: retention, sim: providers.SimConfig{
			InitialStock: 10,
			Payment:      providers.Faults{Latency: 300 * time.Millisecond},
		}})
		ctx := context.Background()
		b.post(t, order("reused-1", "cust-1"))
		b.waitState(t, "reused-1", settle, statemachine.OrderCharging)
		res := b.do(t, http.MethodPost, "/v1/orders/reused-1/cancel", nil)
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		b.waitState(t, "reused-1", settle, statemachine.OrderCancelled)
		b.requireEffects(t, "reused-1", map[string]int{"reserve": 1, "charge": 1, "refund": 1, "release": 1})

		// The retention passes and the order expires.
		if r.Mini != nil {
			r.Mini.FastForward(retention + time.Second)
		}
		waitFor(t, settle, "the order to expire", func() bool {
			return b.do(t, http.MethodGet, "/v1/orders/reused-1", nil).status == http.StatusNotFound
		})

		created := b.post(t, order("reused-1", "cust-1"))
		require.Equal(t, "pending", created.State, "a new order, not a replay")
		o := b.waitState(t, "reused-1", settle, statemachine.OrderCompleted)
		entries, err := b.ledger.ForOrder(ctx, "reused-1")
		require.NoError(t, err)
		byKey := map[string]providers.LedgerEntry{}
		for _, e := range entries {
			byKey[e.Key] = e
		}
		reserve, ok := byKey["reused-1~2:reserve"]
		require.True(t, ok, "the new order reserved under a key of its own: %v", entries)
		require.Equal(t, reserve.ID, o.ReservationID)
		require.NotEqual(t, byKey["reused-1:reserve"].ID, o.ReservationID, "not the released reservation")
		ship, ok := byKey["reused-1~2:ship"]
		require.True(t, ok, "the new order shipped under a key of its own")
		require.Equal(t, o.ReservationID, ship.Ref, "it shipped its own reservation")
		require.Contains(t, byKey, "reused-1~2:charge")
		avail, _, err := b.ledger.Stock(ctx, "SKU-ABC")
		require.NoError(t, err)
		require.Equal(t, 8, avail, "the first order's stock came back, the second's is taken")
	})
}

// A compensation the provider refuses forever is parked as a dead letter
// after its attempts: the order shows it, the list finds it, and an
// operator retries it (once the provider is fixed) or resolves it by hand.
func TestDeadLetteredCompensationOverHTTP(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			Payment: providers.Faults{DeclineCustomers: []string{"broke"}, Latency: 300 * time.Millisecond},
		}})
		for _, id := range []string{"dl-retry", "dl-resolve"} {
			b.post(t, order(id, "broke"))
		}
		for _, id := range []string{"dl-retry", "dl-resolve"} {
			b.waitState(t, id, settle, statemachine.OrderCharging)
		}
		// The inventory starts refusing everything, releases included.
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderInventory, providers.Faults{StrayRate: 1}))
		for _, id := range []string{"dl-retry", "dl-resolve"} {
			waitFor(t, 2*settle, id+" to be dead-lettered", func() bool { return b.get(t, id).DeadLetter != nil })
			o := b.get(t, id)
			require.Equal(t, "release", o.DeadLetter.Step)
			require.Equal(t, statemachine.OrderReleasing, o.State)
			require.Equal(t, "running", o.Status)
		}
		res := b.do(t, http.MethodGet, "/v1/orders?dead_letter=true", nil)
		require.Equal(t, http.StatusOK, res.status)
		var list struct {
			Orders []struct {
				OrderID string `json:"order_id"`
			} `json:"orders"`
		}
		res.json(t, &list)
		require.Len(t, list.Orders, 2)

		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderInventory, providers.Faults{}))
		res = b.do(t, http.MethodPost, "/v1/orders/dl-retry/retry", map[string]string{"reason": "credentials fixed"})
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		b.waitState(t, "dl-retry", settle, statemachine.OrderFailed)
		b.requireEffects(t, "dl-retry", map[string]int{"reserve": 1, "release": 1})

		res = b.do(t, http.MethodPost, "/v1/orders/dl-resolve/resolve", map[string]string{"reason": "released by hand"})
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		o := b.waitState(t, "dl-resolve", settle, statemachine.OrderFailed)
		require.Nil(t, o.DeadLetter)
		evs := b.history(t, "dl-resolve")
		require.Contains(t, string(evs[len(evs)-1].Detail), "released by hand")

		res = b.do(t, http.MethodPost, "/v1/orders/dl-retry/retry", nil)
		require.Equal(t, http.StatusConflict, res.status, "nothing to retry")
		require.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
		res = b.do(t, http.MethodPost, "/v1/orders/dl-resolve/resolve", map[string]string{"reason": strings.Repeat("x", 513)})
		require.Equal(t, http.StatusBadRequest, res.status)
	})
}
