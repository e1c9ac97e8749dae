package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// reserveAt makes the simulator reserve for order id at each warehouse,
// under the keys a v2 worker uses.
func (b *testBundle) reserveAt(id string, warehouses ...string) {
	b.t.Helper()
	for _, wh := range warehouses {
		res, err := b.set.Inventory.Reserve(b.t.Context(), providers.ReserveRequest{
			IdempotencyKey: providers.IdempotencyKeyFor(id, providers.OpReserve, wh), OrderID: id,
			Items: []providers.Item{{SKU: "SKU-1", Qty: 1}}, Warehouse: wh,
		})
		require.NoError(b.t, err)
		b.results[id+":reservation:"+wh] = res
	}
}

// releaseAt makes the simulator release order id's reservation at each
// warehouse; a warehouse where it reserved nothing names an unknown
// reservation.
func (b *testBundle) releaseAt(id string, warehouses ...string) {
	b.t.Helper()
	for _, wh := range warehouses {
		res := b.results[id+":reservation:"+wh]
		if res == "" {
			res = "res_never_made_at_" + wh
		}
		require.NoError(b.t, b.set.Inventory.Release(b.t.Context(), providers.ReleaseRequest{
			IdempotencyKey: providers.IdempotencyKeyFor(id, providers.OpRelease, wh), OrderID: id, ReservationID: res,
		}))
	}
}

// assess makes the risk agent assess order id.
func (b *testBundle) assess(id string) {
	b.t.Helper()
	_, err := b.set.Risk.Assess(b.t.Context(), providers.AssessRequest{
		IdempotencyKey: providers.IdempotencyKey(id, providers.OpAssess), OrderID: id, CustomerID: "cust", AmountCents: 100, Currency: "USD",
	})
	require.NoError(b.t, err)
}

// With several warehouses the effect rules count per warehouse and net: a
// completed order holds exactly one reservation, a failed or cancelled one
// none, and the risk agent's assessments are no effects.
func TestAuditWarehouseRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		craft  func(b *testBundle)
		want   []string
		detail string
	}{
		{"completed: the winner kept, the losers released", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.assess("o")
			b.reserveAt("o", "east", "west", "north")
			b.releaseAt("o", "west", "north")
			b.apply("o", 1, providers.OpCharge, providers.OpShip)
		}, nil, ""},
		{"completed at one warehouse of several, the others out of stock", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.reserveAt("o", "east")
			b.releaseAt("o", "west") // released although never reserved: fine
			b.apply("o", 1, providers.OpCharge, providers.OpShip)
		}, nil, ""},
		{"completed with a loser not released", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.reserveAt("o", "east", "west", "north")
			b.releaseAt("o", "north")
			b.apply("o", 1, providers.OpCharge, providers.OpShip)
		}, []string{audit.RuleCompleted + " o"}, "reserve 3, charge 1, ship 1, refund 0, release 1; still reserved at: east 1, west 1"},
		{"completed with every reservation released", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.reserveAt("o", "east", "west")
			b.releaseAt("o", "east", "west")
			b.apply("o", 1, providers.OpCharge, providers.OpShip)
		}, []string{audit.RuleCompleted + " o"}, "reserve 2, charge 1, ship 1, refund 0, release 2; still reserved at: none"},
		{"completed and refunded", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.reserveAt("o", "east", "west")
			b.releaseAt("o", "west")
			b.apply("o", 1, providers.OpCharge, providers.OpShip, providers.OpRefund)
		}, []string{audit.RuleCompleted + " o"}, ""},
		{"failed: every reservation released at its warehouse", func(b *testBundle) {
			b.order("o", statemachine.StatusFailed, "")
			b.assess("o")
			b.reserveAt("o", "east", "west")
			b.apply("o", 1, providers.OpCharge, providers.OpRefund)
			b.releaseAt("o", "east", "west", "north")
		}, nil, ""},
		{"failed: all out of stock, nothing to release", func(b *testBundle) {
			b.order("o", statemachine.StatusFailed, "")
			b.releaseAt("o", "east", "west")
		}, nil, ""},
		{"cancelled with one reservation kept", func(b *testBundle) {
			b.order("o", statemachine.StatusCancelled, "")
			b.reserveAt("o", "east", "west")
			b.releaseAt("o", "west")
		}, []string{audit.RuleCompensated + " o"}, "cancelled: reserve 2, charge 0, ship 0, refund 0, release 1; still reserved at: east 1"},
		{"failed and shipped", func(b *testBundle) {
			b.order("o", statemachine.StatusFailed, "")
			b.reserveAt("o", "east")
			b.apply("o", 1, providers.OpCharge, providers.OpShip, providers.OpRefund)
			b.releaseAt("o", "east")
		}, []string{audit.RuleCompensated + " o"}, ""},
		{"rejected by the agent: an assessment alone", func(b *testBundle) {
			b.order("o", statemachine.StatusFailed, "")
			b.assess("o")
		}, nil, ""},
		{"an assessment of an order that does not exist is no effect", func(b *testBundle) {
			b.assess("ghost")
		}, nil, ""},
		{"a reservation of an order that does not exist", func(b *testBundle) {
			b.reserveAt("ghost", "east")
		}, []string{audit.RuleOrphan + " ghost"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
				b := setup(t, r)
				b.cleanRun()
				tc.craft(b)
				rep := b.audit(epoch.Add(time.Minute))
				require.ElementsMatch(t, tc.want, rules(rep), "violations: %v", rep.Violations)
				if tc.detail != "" {
					require.Equal(t, tc.detail, rep.Violations[0].Detail)
				}
			})
		})
	}
}

// A release entry at a warehouse where the order reserved nothing (which
// the simulator never writes: it releases nothing) nets to nothing; it
// neither completes a compensation nor spoils a completed order.
func TestAuditReleaseAtAnotherWarehouse(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.order("done", statemachine.StatusCompleted, "")
		b.reserveAt("done", "east")
		b.apply("done", 1, providers.OpCharge, providers.OpShip)
		b.strayRelease("done", "west")
		b.order("undone", statemachine.StatusCancelled, "")
		b.reserveAt("undone", "east")
		b.strayRelease("undone", "west")

		rep := b.audit(epoch.Add(time.Minute))
		require.Equal(t, []string{audit.RuleCompensated + " undone"}, rules(rep), "violations: %v", rep.Violations)
		require.Equal(t, "cancelled: reserve 1, charge 0, ship 0, refund 0, release 1; still reserved at: east 1", rep.Violations[0].Detail)
	})
}

// v1 orders, which name no warehouse, are audited by the counts as before,
// and assessments are counted as read but break no rule.
func TestAuditCountsAssessments(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.cleanRun()
		b.assess("done")
		b.assess("ghost")
		rep := b.audit(epoch.Add(time.Minute))
		require.True(t, rep.OK(), "violations: %v", rep.Violations)
		require.Equal(t, map[string]int{"reserve": 5, "charge": 3, "ship": 2, "refund": 1, "release": 2, "assess": 1}, rep.Effects,
			"an order's assessment is read with its effects; an orphan assessment is never scanned")
	})
}

// strayRelease writes a release entry at warehouse wh for order id that
// matches no reservation, as a provider breaking its contract would.
func (b *testBundle) strayRelease(id, wh string) {
	b.t.Helper()
	e, err := json.Marshal(providers.LedgerEntry{
		Provider: providers.ProviderInventory, Op: providers.OpRelease, Key: providers.IdempotencyKeyFor(id, providers.OpRelease, wh),
		OrderID: id, ID: "res_elsewhere", Warehouse: wh, At: epoch,
	})
	require.NoError(b.t, err)
	ctx := b.t.Context()
	require.NoError(b.t, b.rdb.RPush(ctx, "{sim:inventory}:ledger:order:"+id, e).Err())
	require.NoError(b.t, b.rdb.RPush(ctx, "{sim:inventory}:ledger", e).Err())
}
