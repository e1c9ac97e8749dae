package providers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// reserveAt reserves items for order at warehouse under the key the engine
// builds.
func reserveAt(t *testing.T, set Set, order, wh string, items ...Item) (string, error) {
	t.Helper()
	return set.Inventory.Reserve(t.Context(), ReserveRequest{
		IdempotencyKey: IdempotencyKeyFor(order, OpReserve, wh), OrderID: order, Items: items, Warehouse: wh,
	})
}

// stockAt reads the stock of sku at warehouse.
func (b *simBundle) stockAt(t *testing.T, wh, sku string) int {
	t.Helper()
	n, limited, err := b.ledger.StockAt(t.Context(), wh, sku)
	require.NoError(t, err)
	require.True(t, limited)
	return n
}

// A reservation per warehouse: each warehouse has its own stock, a
// warehouse out of stock declines, and a release gives the units back to
// the warehouse they came from.
func TestSimulatorWarehouses(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{
			InitialStock: 5, Inventory: Faults{OutOfStockWarehouses: []string{"wh-b"}},
		}})
		ctx := t.Context()
		item := Item{SKU: "sku-1", Qty: 2}

		resA, err := reserveAt(t, b.set, "o1", "wh-a", item)
		require.NoError(t, err)
		_, err = reserveAt(t, b.set, "o1", "wh-b", item)
		pe := requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
		require.True(t, pe.Decline())
		resC, err := reserveAt(t, b.set, "o1", "wh-c", item)
		require.NoError(t, err)
		require.NotEqual(t, resA, resC)
		again, err := reserveAt(t, b.set, "o1", "wh-a", item)
		require.NoError(t, err)
		require.Equal(t, resA, again, "the same key, the same reservation")

		require.Equal(t, 3, b.stockAt(t, "wh-a", "sku-1"))
		require.Equal(t, 5, b.stockAt(t, "wh-b", "sku-1"), "a declined reservation takes nothing")
		require.Equal(t, 3, b.stockAt(t, "wh-c", "sku-1"))
		require.Equal(t, 5, b.stockAt(t, "", "sku-1"), "the default warehouse is one of its own")

		// The loser is released at its warehouse; the other keeps its units.
		require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{
			IdempotencyKey: IdempotencyKeyFor("o1", OpRelease, "wh-c"), OrderID: "o1", ReservationID: resC,
		}))
		require.Equal(t, 5, b.stockAt(t, "wh-c", "sku-1"))
		require.Equal(t, 3, b.stockAt(t, "wh-a", "sku-1"))
		require.Equal(t, 5, b.stockAt(t, "", "sku-1"))

		entries, err := b.ledger.ForOrder(ctx, "o1")
		require.NoError(t, err)
		type row struct{ op, key, id, warehouse string }
		var got []row
		for _, e := range entries {
			got = append(got, row{e.Op, e.Key, e.ID, e.Warehouse})
		}
		require.Equal(t, []row{
			{OpReserve, "o1:reserve:wh-a", resA, "wh-a"},
			{OpReserve, "o1:reserve:wh-c", resC, "wh-c"},
			{OpRelease, "o1:release:wh-c", resC, "wh-c"},
		}, got)

		// Each warehouse runs out on its own.
		_, err = reserveAt(t, b.set, "o2", "wh-a", Item{SKU: "sku-1", Qty: 4})
		requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
		_, err = reserveAt(t, b.set, "o2", "wh-c", Item{SKU: "sku-1", Qty: 4})
		require.NoError(t, err)
		require.Equal(t, 1, b.stockAt(t, "wh-c", "sku-1"))

		// The answer names the warehouse; without one it is as before.
		status, body := b.do(t, http.MethodPost, "/inventory/reservations", "o3:reserve:wh-d", `{"order_id":"o3","items":[{"sku":"x","qty":1}],"warehouse":"wh-d"}`)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"reservation_id":"`+simID("res_", ProviderInventory, OpReserve, "o3:reserve:wh-d")+`","warehouse":"wh-d"}`, body)
		status, body = b.do(t, http.MethodPost, "/inventory/reservations", "o3:reserve", `{"order_id":"o3","items":[{"sku":"x","qty":1}]}`)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"reservation_id":"`+simID("res_", ProviderInventory, OpReserve, "o3:reserve")+`"}`, body)

		status, body = b.do(t, http.MethodGet, "/inventory/stock/x?warehouse=wh-d", "", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"sku":"x","warehouse":"wh-d","available":4,"limited":true}`, body)
	})
}

// Releasing returns the units to the reservation's warehouse, however the
// release is keyed, and only once.
func TestSimulatorWarehouseReleaseOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 10}})
		ctx := t.Context()
		res, err := reserveAt(t, b.set, "o1", "north", Item{SKU: "a", Qty: 3}, Item{SKU: "b", Qty: 1}, Item{SKU: "a", Qty: 1})
		require.NoError(t, err)
		require.Equal(t, 6, b.stockAt(t, "north", "a"))
		require.Equal(t, 9, b.stockAt(t, "north", "b"))
		for _, key := range []string{"o1:release:north", "o1:release:north", "o1:release"} {
			require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: key, OrderID: "o1", ReservationID: res}))
		}
		require.Equal(t, 10, b.stockAt(t, "north", "a"))
		require.Equal(t, 10, b.stockAt(t, "north", "b"))
		// Releasing an unknown reservation applies nothing and writes no
		// entry.
		require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release:south", OrderID: "o1", ReservationID: "res_unknown"}))
		var ops []string
		for _, e := range b.all(t, ProviderInventory) {
			ops = append(ops, e.Op+" "+e.Warehouse)
		}
		require.Equal(t, []string{"reserve north", "release north"}, ops)

		// The fault knob round-trips.
		status, body := b.do(t, http.MethodPut, "/inventory/faults", "", `{"out_of_stock_warehouses":["south"]}`)
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `"out_of_stock_warehouses":["south"]`)
		_, err = reserveAt(t, b.set, "o2", "south", Item{SKU: "a", Qty: 1})
		requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
		_, err = reserveAt(t, b.set, "o2", "north", Item{SKU: "a", Qty: 1})
		require.NoError(t, err)

		status, _ = b.do(t, http.MethodPost, "/inventory/reservations", "o4:reserve:x",
			`{"order_id":"o4","items":[{"sku":"a","qty":1}],"warehouse":"`+strings.Repeat("w", 200)+`"}`)
		require.Equal(t, http.StatusBadRequest, status)
	})
}

// A release that read a reservation before it was written names the wrong
// stock: the script refuses it, changing nothing, for the release to read
// the reservation again.
func TestSimulatorReleaseRefusesStaleReservation(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 4}})
		ctx := t.Context()
		res, err := reserveAt(t, b.set, "o1", "east", Item{SKU: "a", Qty: 1})
		require.NoError(t, err)

		k := inventoryKeys
		g := scriptGuard{provider: ProviderInventory, keys: []string{k.answer(OpRelease, "o1:release:east"), k.inProgress(OpRelease, "o1:release:east")},
			args: []any{"", flag(false), inProgressBody}}
		for _, stale := range []struct{ order, wh string }{{"o1", ""}, {"o9", "east"}} {
			a, err := b.sim.runAnswer(ctx, releaseScript, g,
				[]string{k.reservation(res), k.stock(stale.wh), k.ledger(), k.orderLedger(stale.order)},
				releasedBody, `{}`, flag(false), stale.order, stale.wh)
			require.NoError(t, err)
			require.Equal(t, answer{status: 0, body: "stale"}, a, "%+v", stale)
		}
		require.Equal(t, 3, b.stockAt(t, "east", "a"))
		require.Len(t, b.all(t, ProviderInventory), 1, "nothing released")

		require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release:east", OrderID: "o1", ReservationID: res}))
		require.Equal(t, 4, b.stockAt(t, "east", "a"))
	})
}
