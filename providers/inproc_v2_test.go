package providers

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// newRiskInProcess returns an InProcess with the rules of riskTestFaults.
func newRiskInProcess() *InProcess {
	p := NewInProcess()
	p.ReviewCustomers = map[string]bool{"c-watch": true}
	p.RejectCustomers = map[string]bool{"c-fraud": true}
	p.ReviewAboveCents, p.RejectAboveCents = riskTestFaults.ReviewAboveCents, riskTestFaults.RejectAboveCents
	return p
}

func TestInProcessRisk(t *testing.T) {
	t.Parallel()
	p := newRiskInProcess()
	set := p.Set()
	require.NotNil(t, set.Risk)
	for i, tc := range riskCases {
		order := "o" + string(rune('a'+i))
		for range 2 {
			a, err := set.Risk.Assess(t.Context(), assessReq(order+":assess", order, tc.customer, tc.amount))
			require.NoError(t, err, tc.name)
			require.Equal(t, Assessment{Decision: tc.want, Reason: tc.reason}, a, tc.name)
		}
	}
	require.Equal(t, len(riskCases), p.Applied(OpAssess), "one decision per key")
	require.Equal(t, 2*len(riskCases), p.Calls(OpAssess))
	a, err := NewInProcess().Assess(t.Context(), assessReq("o1:assess", "o1", "c-fraud", 1<<40))
	require.NoError(t, err)
	require.Equal(t, DecisionApprove, a.Decision, "no rules, no objection")
}

func TestInProcessWarehouses(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	p.OutOfStockWarehouses = map[string]bool{"wh-b": true}
	set := p.Set()
	resA, err := reserveAt(t, set, "o1", "wh-a", Item{SKU: "a", Qty: 1})
	require.NoError(t, err)
	_, err = reserveAt(t, set, "o1", "wh-b", Item{SKU: "a", Qty: 1})
	requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
	require.True(t, IsDecline(err))
	again, err := reserveAt(t, set, "o1", "wh-a", Item{SKU: "a", Qty: 1})
	require.NoError(t, err)
	require.Equal(t, resA, again)
	require.Equal(t, 1, p.Applied(OpReserve))
}

func TestInProcessShipments(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	p.ShipmentDuration = testShipmentDuration
	p.UndeliverableCustomers = map[string]bool{"c-far": true}
	ctx := t.Context()

	s, err := p.ShipAsync(ctx, shipReq("o1", "c1"))
	require.NoError(t, err)
	require.NotEmpty(t, s.ID)
	require.Equal(t, 1, p.Applied(OpShip), "committed at creation")
	again, err := p.ShipAsync(ctx, shipReq("o1", "c1"))
	require.NoError(t, err)
	require.Equal(t, s.ID, again.ID)
	end := followShipment(t, func() (Shipment, error) { return p.GetShipment(ctx, s.ID) })
	require.Equal(t, ShipmentDelivered, end.Status)
	require.NotEmpty(t, end.TrackingNumber)
	trk, err := p.Ship(ctx, shipReq("o1", "c1"))
	require.NoError(t, err)
	require.Equal(t, end.TrackingNumber, trk, "the key's shipment, delivered")
	require.Equal(t, 1, p.Applied(OpShip))

	far, err := p.ShipAsync(ctx, shipReq("o2", "c-far"))
	require.NoError(t, err)
	require.Equal(t, ShipmentPending, far.Status)
	end = followShipment(t, func() (Shipment, error) { return p.GetShipment(ctx, far.ID) })
	require.True(t, end.Undeliverable(), "%+v", end)
	require.Equal(t, 1, p.Applied(OpShip), "nothing left the warehouse")

	_, err = p.GetShipment(ctx, "shp_nope")
	pe := requireProviderError(t, err, http.StatusNotFound, CodeNotFound)
	require.True(t, pe.Unexpected())
	require.Equal(t, OpTrack, pe.Op)

	atOnce := NewInProcess()
	s, err = atOnce.ShipAsync(ctx, shipReq("o1", "c1"))
	require.NoError(t, err)
	require.Equal(t, Shipment{Status: ShipmentDelivered, Progress: 100, TrackingNumber: s.TrackingNumber}, s)
	require.NotEmpty(t, s.TrackingNumber)
	atOnce.UndeliverableCustomers = map[string]bool{"c-far": true}
	_, err = atOnce.ShipAsync(ctx, shipReq("o2", "c-far"))
	requireProviderError(t, err, http.StatusUnprocessableEntity, CodeUndeliverable)
}

// InProcess answers the v2 calls as the simulator does: the same
// decisions, the same declines, the same shipment lifecycles.
func TestInProcessParity(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		sim := setupSim(t, r, simOpts{cfg: SimConfig{
			Risk:      riskTestFaults,
			Inventory: Faults{OutOfStockWarehouses: []string{"wh-b"}},
			Shipping:  Faults{ShipmentDuration: testShipmentDuration, DeclineCustomers: []string{"c-far"}},
		}})
		p := newRiskInProcess()
		p.OutOfStockWarehouses = map[string]bool{"wh-b": true}
		p.ShipmentDuration = testShipmentDuration
		p.UndeliverableCustomers = map[string]bool{"c-far": true}

		// outcome runs the v2 calls and describes what they answered, IDs
		// left out.
		outcome := func(set Set) []any {
			ctx := t.Context()
			var out []any
			for i, tc := range riskCases {
				order := "r" + string(rune('a'+i))
				a, err := set.Risk.Assess(ctx, assessReq(order+":assess", order, tc.customer, tc.amount))
				out = append(out, a, errorKind(err))
			}
			for _, wh := range []string{"wh-a", "wh-b", ""} {
				_, err := reserveAt(t, set, "o1", wh, Item{SKU: "a", Qty: 1})
				out = append(out, errorKind(err))
			}
			for _, customer := range []string{"c1", "c-far"} {
				order := "ship-" + customer
				s, err := set.Shipping.ShipAsync(ctx, shipReq(order, customer))
				require.NoError(t, err)
				again, err := set.Shipping.ShipAsync(ctx, shipReq(order, customer))
				require.NoError(t, err)
				end := followShipment(t, func() (Shipment, error) { return set.Shipping.GetShipment(ctx, s.ID) })
				out = append(out, s.Status, s.Progress, again.ID == s.ID, end.Status, end.Progress, end.Error, end.TrackingNumber != "")
			}
			_, err := set.Shipping.GetShipment(ctx, "shp_nope")
			out = append(out, errorKind(err))
			_, err = set.Shipping.Ship(ctx, shipReq("sync", "c-far"))
			out = append(out, errorKind(err))
			return out
		}
		require.Equal(t, outcome(sim.set), outcome(p.Set()))
	})
}

func TestInProcessShipAsyncCancelled(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	p.Latency = time.Hour
	p.ShipmentDuration = time.Second
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.ShipAsync(ctx, shipReq("o1", "c1"))
	require.True(t, IsAmbiguous(err))
	_, err = p.GetShipment(ctx, "shp_1")
	pe := requireProviderError(t, err, 0, "")
	require.Equal(t, OpTrack, pe.Op)
	require.Zero(t, p.Calls(OpShip))
}
