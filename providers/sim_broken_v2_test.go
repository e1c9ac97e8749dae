package providers

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// The broken modes reach the v2 calls, so that the audit can be proven on
// them: a declined warehouse or shipment applied anyway, a shipment made
// again under its key, a warehouse release that gives nothing back.
func TestSimulatorBrokenV2(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: brokenAll(SimConfig{
			InitialStock: 5,
			Inventory:    Faults{OutOfStockWarehouses: []string{"west"}},
			Shipping:     Faults{ShipmentDuration: time.Hour, DeclineCustomers: []string{"c-far"}},
		}, BrokenApplyDeclines)})
		ctx := t.Context()

		_, err := reserveAt(t, b.set, "o1", "west", Item{SKU: "a", Qty: 1})
		requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
		require.Equal(t, 4, b.stockAt(t, "west", "a"), "declined, and taken anyway")
		entries := b.applied(t, OpReserve, "o1")
		require.Len(t, entries, 1)
		require.Equal(t, "west", entries[0].Warehouse)

		s, err := b.set.Shipping.ShipAsync(ctx, shipReq("o2", "c-far"))
		require.NoError(t, err)
		require.Len(t, b.applied(t, OpShip, "o2"), 1, "an undeliverable shipment committed anyway")
		got, err := b.set.Shipping.GetShipment(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, ShipmentPending, got.Status)

		require.NoError(t, b.sim.SetFaults(ProviderShipping, Faults{ShipmentDuration: time.Hour, Broken: []string{BrokenIgnoreKeys}}))
		for range 2 {
			again, err := b.set.Shipping.ShipAsync(ctx, shipReq("o3", "c1"))
			require.NoError(t, err)
			require.Equal(t, simID("shp_", ProviderShipping, OpShip, "o3:ship"), again.ID)
		}
		require.Equal(t, 2, b.keyCounts(t, ProviderShipping)["o3:ship"], "made twice under one key")

		require.NoError(t, b.sim.SetFaults(ProviderInventory, Faults{Broken: []string{BrokenDropCompensations}}))
		res, err := reserveAt(t, b.set, "o4", "east", Item{SKU: "a", Qty: 2})
		require.NoError(t, err)
		require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{
			IdempotencyKey: IdempotencyKeyFor("o4", OpRelease, "east"), OrderID: "o4", ReservationID: res,
		}))
		require.Equal(t, 3, b.stockAt(t, "east", "a"), "nothing given back")
		require.Empty(t, b.applied(t, OpRelease, "o4"))
	})
}
