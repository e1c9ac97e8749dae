package providers

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// testShipmentDuration is how long the tests' shipments take: long enough
// to be seen on the way, short enough to wait for.
const testShipmentDuration = 60 * time.Millisecond

// shipmentRank orders the statuses a shipment moves through.
var shipmentRank = map[string]int{ShipmentPending: 0, ShipmentInTransit: 1, ShipmentDelivered: 2, ShipmentFailed: 2}

// followShipment polls get until the shipment is done, requiring that its
// status and progress never go back, and returns its last state.
func followShipment(t *testing.T, get func() (Shipment, error)) Shipment {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last Shipment
	for i := 0; ; i++ {
		s, err := get()
		require.NoError(t, err)
		if i > 0 {
			require.GreaterOrEqual(t, shipmentRank[s.Status], shipmentRank[last.Status], "%+v after %+v", s, last)
			require.GreaterOrEqual(t, s.Progress, last.Progress, "%+v after %+v", s, last)
		}
		require.True(t, s.Progress >= 0 && s.Progress <= 100, "%+v", s)
		last = s
		if s.Done() {
			return s
		}
		require.True(t, time.Now().Before(deadline), "shipment not done: %+v", s)
		time.Sleep(5 * time.Millisecond)
	}
}

func shipReq(order, customer string) ShipRequest {
	return ShipRequest{IdempotencyKey: order + ":ship", OrderID: order, CustomerID: customer, ReservationID: "res-" + order,
		Items: []Item{{SKU: "sku-1", Qty: 1}}}
}

// A long-running shipment: accepted 202, committed in the ledger at once,
// progressing to delivered, and the same at every simulator on the Redis.
func TestSimulatorShipmentLifecycle(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Shipping: Faults{ShipmentDuration: testShipmentDuration}}})
		other := setupSim(t, r, simOpts{}) // no duration of its own: the record says
		ctx := t.Context()

		s, err := b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(s.ID, "shp_"), s.ID)
		require.Contains(t, []string{ShipmentPending, ShipmentInTransit}, s.Status)
		entries := b.all(t, ProviderShipping)
		require.Len(t, entries, 1, "the goods are committed at creation")
		require.Equal(t, []string{OpShip, "o1:ship", "res-o1"}, []string{entries[0].Op, entries[0].Key, entries[0].Ref})

		again, err := other.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.NoError(t, err)
		require.Equal(t, s.ID, again.ID, "the same key, the same shipment")

		end := followShipment(t, func() (Shipment, error) { return other.set.Shipping.GetShipment(ctx, s.ID) })
		require.Equal(t, Shipment{ID: s.ID, Status: ShipmentDelivered, Progress: 100, TrackingNumber: entries[0].ID}, end)
		viaFirst, err := b.set.Shipping.GetShipment(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, end, viaFirst)

		// Once delivered, the same key still names the same shipment.
		again, err = b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.NoError(t, err)
		require.Equal(t, s.ID, again.ID)
		require.Len(t, b.all(t, ProviderShipping), 1)
	})
}

// An undeliverable shipment is accepted, then fails undeliverable, and
// nothing left the warehouse: no ledger entry. Without respond-async the
// same customer gets the 422 as before.
func TestSimulatorShipmentUndeliverable(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Shipping: Faults{
			ShipmentDuration: testShipmentDuration, DeclineCustomers: []string{"c-far"},
		}}})
		ctx := t.Context()
		s, err := b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c-far"))
		require.NoError(t, err, "accepted first")
		require.Equal(t, ShipmentPending, s.Status)
		end := followShipment(t, func() (Shipment, error) { return b.set.Shipping.GetShipment(ctx, s.ID) })
		require.Equal(t, Shipment{ID: s.ID, Status: ShipmentFailed, Error: CodeUndeliverable}, end)
		require.True(t, end.Undeliverable())
		require.Empty(t, b.all(t, ProviderShipping))

		_, err = b.set.Shipping.Ship(ctx, shipReq("o2", "c-far"))
		requireProviderError(t, err, http.StatusUnprocessableEntity, CodeUndeliverable)

		status, body := b.do(t, http.MethodGet, "/shipping/shipments/"+s.ID, "", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"shipment_id":"`+s.ID+`","status":"failed","progress":0,"error":"undeliverable"}`, body)
	})
}

// Without a duration, or for a client that does not ask for it, shipping
// answers at once as it always did.
func TestSimulatorShipmentAtOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		ctx := t.Context()
		s, err := b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.NoError(t, err)
		trk := simID("trk_", ProviderShipping, OpShip, "o1:ship")
		require.Equal(t, Shipment{Status: ShipmentDelivered, Progress: 100, TrackingNumber: trk}, s)

		require.NoError(t, b.sim.SetFaults(ProviderShipping, Faults{ShipmentDuration: time.Hour, DeclineCustomers: []string{"c-far"}}))
		got, err := b.set.Shipping.Ship(ctx, shipReq("o2", "c1"))
		require.NoError(t, err, "no Prefer: respond-async, no 202")
		require.Equal(t, simID("trk_", ProviderShipping, OpShip, "o2:ship"), got)
		s, err = b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.NoError(t, err)
		require.Equal(t, trk, s.TrackingNumber, "a key answered at once stays answered")
		require.Len(t, b.all(t, ProviderShipping), 2)

		// A long shipment reports its progress by the same rules.
		s, err = b.set.Shipping.ShipAsync(ctx, shipReq("o3", "c1"))
		require.NoError(t, err)
		got3, err := b.set.Shipping.GetShipment(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, Shipment{ID: s.ID, Status: ShipmentPending}, got3)

		status, body := b.do(t, http.MethodGet, "/shipping/shipments/shp_nope", "", "")
		require.Equal(t, http.StatusNotFound, status, body)
		_, err = b.set.Shipping.GetShipment(ctx, "shp_nope")
		pe := requireProviderError(t, err, http.StatusNotFound, CodeNotFound)
		require.True(t, pe.Unexpected())
	})
}

// The faults reach the new calls: a lost 202 leaves the shipment to be
// found again under its key, and a read takes failures and strays but is
// never held in progress.
func TestSimulatorShipmentFaults(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Shipping: Faults{ShipmentDuration: time.Hour, TimeoutRate: 1, TimeoutHold: time.Millisecond}}})
		ctx := t.Context()
		_, err := b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.True(t, IsAmbiguous(err), "a lost answer: %v", err)
		require.Len(t, b.all(t, ProviderShipping), 1, "the shipment was made")

		require.NoError(t, b.sim.SetFaults(ProviderShipping, Faults{ShipmentDuration: time.Hour}))
		s, err := b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
		require.NoError(t, err)
		require.Equal(t, simID("shp_", ProviderShipping, OpShip, "o1:ship"), s.ID)
		require.Len(t, b.all(t, ProviderShipping), 1, "and made once")

		require.NoError(t, b.sim.SetFaults(ProviderShipping, Faults{ShipmentDuration: time.Hour, FailureRate: 1}))
		_, err = b.set.Shipping.GetShipment(ctx, s.ID)
		requireProviderError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
		require.NoError(t, b.sim.SetFaults(ProviderShipping, Faults{ShipmentDuration: time.Hour, StrayRate: 1}))
		_, err = b.set.Shipping.GetShipment(ctx, s.ID)
		require.True(t, IsUnexpected(err), "%v", err)
		require.False(t, IsDecline(err))

		// Every new key is held in progress for an hour, but a read is not.
		require.NoError(t, b.sim.SetFaults(ProviderShipping, Faults{ShipmentDuration: time.Hour, InProgressRate: 1, InProgressHold: time.Hour}))
		got, err := b.set.Shipping.GetShipment(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, ShipmentPending, got.Status)

		status, body := b.do(t, http.MethodPut, "/shipping/faults", "", `{"shipment_duration":"250ms"}`)
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `"shipment_duration":"250ms"`)
	})
}

func TestPrefersAsync(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"respond-async":                true,
		"Respond-Async":                true,
		"wait=5, respond-async":        true,
		"respond-async; foo=bar":       true,
		"return=minimal":               false,
		"":                             false,
		"respond-asynchronously, wait": false,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Prefer", v)
		}
		require.Equal(t, want, prefersAsync(h), "%q", v)
	}
}

func TestShipmentAt(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := 10 * time.Second
	for _, tc := range []struct {
		at            time.Duration
		undeliverable bool
		status        string
		progress      int
	}{
		{-time.Second, false, ShipmentPending, 0},
		{0, false, ShipmentPending, 0},
		{time.Second, false, ShipmentPending, 10},
		{2 * time.Second, false, ShipmentInTransit, 20},
		{9999 * time.Millisecond, false, ShipmentInTransit, 99},
		{d, false, ShipmentDelivered, 100},
		{time.Hour, false, ShipmentDelivered, 100},
		{time.Second, true, ShipmentPending, 0},
		{2 * time.Second, true, ShipmentFailed, 0},
		{time.Hour, true, ShipmentFailed, 0},
	} {
		status, progress := shipmentAt(t0, d, tc.undeliverable, t0.Add(tc.at))
		require.Equal(t, []any{tc.status, tc.progress}, []any{status, progress}, "%v undeliverable=%v", tc.at, tc.undeliverable)
	}
	status, progress := shipmentAt(t0, 0, false, t0)
	require.Equal(t, []any{ShipmentDelivered, 100}, []any{status, progress}, "no duration: delivered at once")
}
