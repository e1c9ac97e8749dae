package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// Workflow v2 over HTTP, against the simulators: the risk agent, a human's
// review with its deadline, reservations at every warehouse, the shipment
// followed to delivery, signals, pause and resume. Each capability has a
// success path and an edge path, on miniredis and on a real redis-server.

// v2 is the options of a bundle whose new orders take version 2.
func v2(sim providers.SimConfig, o statemachine.OrderV2Options) options {
	if sim.Shipping.ShipmentDuration == 0 {
		sim.Shipping.ShipmentDuration = 150 * time.Millisecond
	}
	return options{version: 2, v2: o, sim: sim}
}

// signal posts a signal with a reason and returns the answer.
func (b *testBundle) signal(t testing.TB, id, signal, reason string) response {
	t.Helper()
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	return b.do(t, http.MethodPost, "/v1/orders/"+id+"/"+signal, body)
}

// transitionsOf returns the events of an order's transitions.
func (b *testBundle) transitionsOf(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	for _, ev := range b.history(t, id) {
		if ev.Type == statemachine.EventTransition {
			out = append(out, ev.Event)
		}
	}
	return out
}

func TestV2ApprovedOrderShipsWithProgress(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, withCluster, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, v2(providers.SimConfig{Shipping: providers.Faults{ShipmentDuration: 600 * time.Millisecond}},
			statemachine.OrderV2Options{Warehouses: []string{"east", "west"}}))
		created := b.post(t, order("v2-ok", "cust-1"))
		require.Equal(t, 2, created.WorkflowVersion)
		o := b.waitState(t, "v2-ok", settle, statemachine.OrderShipping)
		waitFor(t, settle, "progress from the shipment's heartbeats", func() bool {
			p := b.get(t, "v2-ok").Progress
			return p != nil && p.Step == statemachine.StepShipTracked && p.Percent > 0
		})
		o = b.waitState(t, "v2-ok", settle, statemachine.OrderCompleted)
		require.Equal(t, "approve", o.RiskDecision)
		require.Contains(t, []string{"east", "west"}, o.Warehouse)
		require.NotEmpty(t, o.TrackingNumber)
		require.Equal(t, 100, o.Progress.Percent)
		require.Equal(t, []string{"start", "approved", "reserved_extra", "extra_released", "charged", "shipped"}, b.transitionsOf(t, "v2-ok"))
		// One reservation kept, at the winner; the other released.
		entries, err := b.ledger.ForOrder(context.Background(), "v2-ok")
		require.NoError(t, err)
		held := map[string]int{}
		for _, e := range entries {
			switch e.Op {
			case providers.OpReserve:
				held[e.Warehouse]++
			case providers.OpRelease:
				held[e.Warehouse]--
			}
		}
		require.Equal(t, map[string]int{o.Warehouse: 1, map[string]string{"east": "west", "west": "east"}[o.Warehouse]: 0}, held)
		require.Equal(t, 1, b.effects(t, "v2-ok")["ship"], "one shipment")
	})
}

func TestV2RiskRejectAndReview(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, v2(providers.SimConfig{Risk: providers.Faults{
			RejectCustomers: []string{"fraudster"}, ReviewCustomers: []string{"newcomer", "hesitant", "late"},
		}}, statemachine.OrderV2Options{ReviewTimeout: time.Second}))

		// Reject: failed, nothing to undo.
		b.post(t, order("v2-rejected", "fraudster"))
		o := b.waitState(t, "v2-rejected", settle, statemachine.OrderFailed)
		require.Equal(t, "reject", o.RiskDecision)
		b.requireEffects(t, "v2-rejected", map[string]int{"assess": 1})

		// Review, approved by a human with a reason.
		b.post(t, order("v2-review", "newcomer"))
		o = b.waitState(t, "v2-review", settle, statemachine.OrderInReview)
		require.NotNil(t, o.Review, "the review is shown while it waits")
		require.NotEmpty(t, o.Review.Reason)
		require.WithinDuration(t, time.Now().Add(time.Second), o.Review.Deadline, 2*time.Second)
		res := b.signal(t, "v2-review", "approve", "checked the ID")
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		again := b.signal(t, "v2-review", "approve", "")
		require.Equal(t, http.StatusAccepted, again.status)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"), "approve is idempotent")
		b.waitState(t, "v2-review", settle, statemachine.OrderCompleted)
		var reason string
		for _, ev := range b.history(t, "v2-review") {
			if ev.Event == "review_approved" {
				reason = string(ev.Detail)
			}
		}
		require.Contains(t, reason, "checked the ID", "the signal's reason is in the history")
		refused := b.signal(t, "v2-review", "reject", "")
		require.Equal(t, http.StatusConflict, refused.status, "no review to reject any more")
		require.Equal(t, "application/problem+json", refused.header.Get("Content-Type"))

		// Review, rejected.
		b.post(t, order("v2-review-no", "hesitant"))
		b.waitState(t, "v2-review-no", settle, statemachine.OrderInReview)
		require.Equal(t, http.StatusAccepted, b.signal(t, "v2-review-no", "reject", "not convinced").status)
		b.waitState(t, "v2-review-no", settle, statemachine.OrderFailed)
		b.requireEffects(t, "v2-review-no", map[string]int{"assess": 1})

		// Nobody reviews: the deadline cancels it, once.
		b.post(t, order("v2-review-late", "late"))
		b.waitState(t, "v2-review-late", settle, statemachine.OrderCancelled)
		require.Equal(t, []string{"start", "review", "review_timed_out"}, b.transitionsOf(t, "v2-review-late"))
		require.Equal(t, http.StatusConflict, b.signal(t, "v2-review-late", "approve", "").status)

		// Approve is refused where nothing waits for a review.
		require.Equal(t, http.StatusConflict, b.signal(t, "v2-rejected", "approve", "").status)
	})
}

func TestV2FanoutAcrossWarehouses(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, v2(providers.SimConfig{
			InitialStock: 10,
			Inventory:    providers.Faults{OutOfStockWarehouses: []string{"north"}},
		}, statemachine.OrderV2Options{Warehouses: []string{"north", "south"}}))
		ctx := context.Background()

		// One warehouse out of stock: the other wins, nothing to release.
		b.post(t, order("v2-fan", "cust-1"))
		o := b.waitState(t, "v2-fan", settle, statemachine.OrderCompleted)
		require.Equal(t, "south", o.Warehouse)
		require.Equal(t, []string{"start", "approved", "reserved", "charged", "shipped"}, b.transitionsOf(t, "v2-fan"))

		// Out of stock everywhere: failed with nothing held.
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderInventory,
			providers.Faults{OutOfStockWarehouses: []string{"north", "south"}}))
		b.post(t, order("v2-none", "cust-1"))
		b.waitState(t, "v2-none", settle, statemachine.OrderFailed)
		b.requireEffects(t, "v2-none", map[string]int{"assess": 1})

		// Cancelled during the fan-out: everything reserved is released.
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderInventory, providers.Faults{Latency: 400 * time.Millisecond}))
		b.post(t, order("v2-cancel", "cust-1"))
		b.waitState(t, "v2-cancel", settle, statemachine.OrderReserving)
		require.Equal(t, http.StatusAccepted, b.signal(t, "v2-cancel", "cancel", "changed my mind").status)
		b.waitState(t, "v2-cancel", settle, statemachine.OrderCancelled)
		entries, err := b.ledger.ForOrder(ctx, "v2-cancel")
		require.NoError(t, err)
		held := map[string]int{}
		for _, e := range entries {
			switch e.Op {
			case providers.OpReserve:
				held[e.Warehouse]++
			case providers.OpRelease:
				held[e.Warehouse]--
			case providers.OpCharge, providers.OpShip:
				t.Fatalf("a cancelled order made %s", e.Op)
			}
		}
		for wh, n := range held {
			require.Zero(t, n, "stock held at %s", wh)
		}
		for _, wh := range []string{"north", "south"} {
			avail, _, err := b.ledger.StockAt(ctx, wh, "SKU-ABC")
			require.NoError(t, err)
			want := 10
			if wh == "south" {
				want = 8 // v2-fan's reservation
			}
			require.Equal(t, want, avail, "stock at %s", wh)
		}
	})
}

func TestV2PauseAndResume(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, v2(providers.SimConfig{Risk: providers.Faults{ReviewCustomers: []string{"slow"}}},
			statemachine.OrderV2Options{ReviewTimeout: 500 * time.Millisecond}))

		// Paused in review: the deadline passes while paused and fires on
		// resume.
		b.post(t, order("v2-paused", "slow"))
		b.waitState(t, "v2-paused", settle, statemachine.OrderInReview)
		res := b.signal(t, "v2-paused", "pause", "fraud team looking")
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		var o orders.Resource
		res.json(t, &o)
		require.True(t, o.Paused)
		require.Equal(t, "true", b.signal(t, "v2-paused", "pause", "").header.Get("Idempotent-Replayed"))
		deadline := o.Review.Deadline
		waitFor(t, settle, "the deadline to pass", func() bool { return time.Now().After(deadline.Add(300 * time.Millisecond)) })
		require.Equal(t, statemachine.OrderInReview, b.get(t, "v2-paused").State, "nothing moves while paused")
		require.Equal(t, http.StatusAccepted, b.signal(t, "v2-paused", "resume", "done").status)
		b.waitState(t, "v2-paused", settle, statemachine.OrderCancelled)
		require.Equal(t, http.StatusConflict, b.signal(t, "v2-paused", "resume", "").status, "a finished order takes no signal")

		// Resuming an order that was never paused is refused.
		b.post(t, order("v2-never", "slow"))
		b.waitState(t, "v2-never", settle, statemachine.OrderInReview)
		refused := b.signal(t, "v2-never", "resume", "")
		require.Equal(t, http.StatusConflict, refused.status)
		require.Contains(t, string(refused.body), "not paused")

		// Paused while a step runs: the step finishes and records its
		// result, and the next one does not start until the resume.
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderRisk, providers.Faults{Latency: 300 * time.Millisecond}))
		b.post(t, order("v2-held", "cust-1"))
		b.waitState(t, "v2-held", settle, statemachine.OrderAssessing)
		require.Equal(t, http.StatusAccepted, b.signal(t, "v2-held", "pause", "").status)
		held := b.waitState(t, "v2-held", settle, statemachine.OrderReserving)
		require.Equal(t, "approve", held.RiskDecision, "the running assessment finished and was recorded")
		require.True(t, held.Paused)
		for step := range held.Attempts {
			require.NotContains(t, step, statemachine.StepReserveAt, "no reservation was attempted while paused: %v", held.Attempts)
		}
		require.Equal(t, http.StatusAccepted, b.signal(t, "v2-held", "resume", "").status)
		b.waitState(t, "v2-held", settle, statemachine.OrderCompleted)
	})
}

// A cancel or a reject racing a running step ends consistent: the step's
// result is recorded and compensated.
func TestV2CancelRacesARunningCharge(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, v2(providers.SimConfig{Payment: providers.Faults{Latency: 300 * time.Millisecond}},
			statemachine.OrderV2Options{Warehouses: []string{"a", "b", "c"}}))
		b.post(t, order("v2-race", "cust-1"))
		b.waitState(t, "v2-race", settle, statemachine.OrderCharging)
		require.Equal(t, http.StatusAccepted, b.signal(t, "v2-race", "cancel", "").status)
		b.waitState(t, "v2-race", settle, statemachine.OrderCancelled)
		got := b.effects(t, "v2-race")
		require.Equal(t, got["charge"], got["refund"], "every charge refunded: %v", got)
		require.Equal(t, got["reserve"], got["release"], "every reservation released: %v", got)
		require.Zero(t, got["ship"])
		require.True(t, strings.Contains(strings.Join(b.transitionsOf(t, "v2-race"), ","), "cancel"))
	})
}
