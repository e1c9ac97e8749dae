package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// epoch is when every test's orders are created.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testBundle is one isolated Redis with a store to write orders and the
// provider simulators to apply effects, both on it.
type testBundle struct {
	t     *testing.T
	rdb   redis.UniversalClient
	store *statemachine.Store
	def   *statemachine.Definition
	set   providers.Set
	// results holds what each order's effects returned, to undo them.
	results map[string]string
}

func setup(t *testing.T, r *redistest.Instance) *testBundle {
	t.Helper()
	rdb := r.Client(t)
	store := statemachine.NewStore(rdb, statemachine.StoreConfig{Clock: func() time.Time { return epoch }})
	t.Cleanup(store.Close)
	sim := providers.NewSimulator(rdb, providers.SimConfig{})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { srv.Close(); sim.Close() })
	set, err := providers.NewHTTP(providers.HTTPConfig{
		InventoryURL: srv.URL + "/inventory", PaymentURL: srv.URL + "/payment", ShippingURL: srv.URL + "/shipping",
		RiskURL: srv.URL + "/risk",
	})
	require.NoError(t, err)
	def, err := statemachine.NewOrderRegistry().Get(statemachine.OrderWorkflow, 1)
	require.NoError(t, err)
	return &testBundle{t: t, rdb: rdb, store: store, def: def, set: set, results: map[string]string{}}
}

// The v1 events that take a new order to each status.
var toStatus = map[statemachine.Status][]string{
	statemachine.StatusRunning:   nil,
	statemachine.StatusCompleted: {"start", "reserved", "charged", "shipped"},
	statemachine.StatusCancelled: {"cancel"},
	statemachine.StatusFailed:    {"start", "reserve_failed"},
}

// order creates order id, created under the Idempotency-Key hash keyHash
// (or none), and moves it to status.
func (b *testBundle) order(id string, status statemachine.Status, keyHash string) {
	b.t.Helper()
	ctx := b.t.Context()
	res, err := b.store.Create(ctx, statemachine.NewInstance{
		ID: id, Definition: b.def, Fingerprint: "fp:" + id, KeyHash: keyHash, Input: []byte(`{}`), Task: "task:" + id, Due: epoch,
	})
	require.NoError(b.t, err)
	require.True(b.t, res.Created)
	state, rev := b.def.Initial, res.Rev
	for _, ev := range toStatus[status] {
		to, err := b.def.Destination(state, ev)
		require.NoError(b.t, err)
		st, _ := b.def.State(to)
		applied, err := b.store.Apply(ctx, statemachine.Change{
			ID: id, ExpectState: state, ExpectRev: rev, Lease: statemachine.LeaseIgnore, KeepLease: true,
			State: to, Status: st.Status, Event: &statemachine.Event{Type: statemachine.EventTransition, Event: ev, From: state, To: to},
		})
		require.NoError(b.t, err)
		state, rev = to, applied.Rev
	}
}

// incarnation makes order id's record say it is incarnation n.
func (b *testBundle) incarnation(id string, n int) {
	b.t.Helper()
	require.NoError(b.t, b.rdb.HSet(b.t.Context(), statemachine.RecordKey(id), "inc", n).Err())
}

// apply makes the simulators apply ops for incarnation inc of order id,
// under the keys the worker would use.
func (b *testBundle) apply(id string, inc int, ops ...string) {
	b.t.Helper()
	ctx := b.t.Context()
	prefix := statemachine.KeyPrefix(id, inc)
	key := func(op string) string { return providers.IdempotencyKey(prefix, op) }
	items := []providers.Item{{SKU: "SKU-1", Qty: 1}}
	for _, op := range ops {
		var err error
		r := b.results
		switch op {
		case providers.OpReserve:
			r[prefix+op], err = b.set.Inventory.Reserve(ctx, providers.ReserveRequest{IdempotencyKey: key(op), OrderID: id, Items: items})
		case providers.OpCharge:
			r[prefix+op], err = b.set.Payment.Charge(ctx, providers.ChargeRequest{IdempotencyKey: key(op), OrderID: id,
				CustomerID: "cust", AmountCents: 100, Currency: "USD"})
		case providers.OpShip:
			r[prefix+op], err = b.set.Shipping.Ship(ctx, providers.ShipRequest{IdempotencyKey: key(op), OrderID: id,
				ReservationID: r[prefix+providers.OpReserve], Items: items})
		case providers.OpRefund:
			r[prefix+op], err = b.set.Payment.Refund(ctx, providers.RefundRequest{IdempotencyKey: key(op), OrderID: id,
				TransactionID: r[prefix+providers.OpCharge], AmountCents: 100, Currency: "USD"})
		case providers.OpRelease:
			err = b.set.Inventory.Release(ctx, providers.ReleaseRequest{IdempotencyKey: key(op), OrderID: id,
				ReservationID: r[prefix+providers.OpReserve]})
		default:
			b.t.Fatalf("unknown op %s", op)
		}
		require.NoError(b.t, err, "%s of %s", op, prefix)
	}
}

// applyTwice writes a second ledger entry for the latest entry of order
// id at provider, as a provider that lost its idempotency would.
func (b *testBundle) applyTwice(id, provider string) {
	b.t.Helper()
	ctx := b.t.Context()
	key := "{sim:" + provider + "}:ledger:order:" + id
	last, err := b.rdb.LIndex(ctx, key, -1).Result()
	require.NoError(b.t, err)
	require.NoError(b.t, b.rdb.RPush(ctx, key, last).Err())
	require.NoError(b.t, b.rdb.RPush(ctx, "{sim:"+provider+"}:ledger", last).Err())
}

// bind binds Idempotency-Key hash h to order id, as the API does.
func (b *testBundle) bind(h, id string) {
	b.t.Helper()
	outcome, _, err := b.store.BindIdempotencyKey(b.t.Context(), h, "fp:"+id, id, time.Hour)
	require.NoError(b.t, err)
	require.Equal(b.t, statemachine.IdempotencyNew, outcome)
}

// cleanRun writes orders of every status, each with exactly the effects
// its status allows.
func (b *testBundle) cleanRun() {
	b.t.Helper()
	b.order("done", statemachine.StatusCompleted, "")
	b.apply("done", 1, providers.OpReserve, providers.OpCharge, providers.OpShip)
	b.order("undone", statemachine.StatusCancelled, "")
	b.apply("undone", 1, providers.OpReserve, providers.OpCharge, providers.OpRefund, providers.OpRelease)
	b.order("declined", statemachine.StatusFailed, "")
	b.apply("declined", 1, providers.OpReserve, providers.OpRelease)
	b.order("fresh", statemachine.StatusRunning, "")
	b.apply("fresh", 1, providers.OpReserve)
	h := statemachine.HashScopedIdempotencyKey("shop", "k-1")
	b.bind(h, "keyed")
	b.order("keyed", statemachine.StatusCompleted, h)
	b.apply("keyed", 1, providers.OpReserve, providers.OpCharge, providers.OpShip)
}

// audit runs the audit at now.
func (b *testBundle) audit(now time.Time) *audit.Report {
	b.t.Helper()
	rep, err := audit.Run(b.t.Context(), b.rdb, audit.Config{Now: now, MaxRunning: time.Hour})
	require.NoError(b.t, err)
	return rep
}

// rules returns the rule and order of each violation.
func rules(rep *audit.Report) []string {
	var out []string
	for _, v := range rep.Violations {
		out = append(out, v.Rule+" "+v.OrderID)
	}
	return out
}

func TestAuditCleanRun(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.cleanRun()
		rep := b.audit(epoch.Add(time.Minute))
		require.True(t, rep.OK(), "violations: %v", rep.Violations)
		require.Equal(t, map[string]int{"completed": 2, "cancelled": 1, "failed": 1, "running": 1}, rep.Orders)
		require.Equal(t, 5, rep.Total())
		require.Equal(t, map[string]int{"reserve": 5, "charge": 3, "ship": 2, "refund": 1, "release": 2}, rep.Effects)
		require.Zero(t, rep.EarlierIncarnations)
		require.Equal(t, epoch.Add(time.Minute), rep.CheckedAt)
	})
}

// Each rule fires on the situation it guards against, and only there.
func TestAuditRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		craft func(b *testBundle)
		want  []string
	}{
		{"completed without a shipment", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.apply("o", 1, providers.OpReserve, providers.OpCharge)
		}, []string{audit.RuleCompleted + " o"}},
		{"completed and refunded", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.apply("o", 1, providers.OpReserve, providers.OpCharge, providers.OpShip, providers.OpRefund)
		}, []string{audit.RuleCompleted + " o"}},
		{"cancelled without a refund", func(b *testBundle) {
			b.order("o", statemachine.StatusCancelled, "")
			b.apply("o", 1, providers.OpReserve, providers.OpCharge, providers.OpRelease)
		}, []string{audit.RuleCompensated + " o"}},
		{"failed without a release", func(b *testBundle) {
			b.order("o", statemachine.StatusFailed, "")
			b.apply("o", 1, providers.OpReserve)
		}, []string{audit.RuleCompensated + " o"}},
		{"failed and shipped", func(b *testBundle) {
			b.order("o", statemachine.StatusFailed, "")
			b.apply("o", 1, providers.OpReserve, providers.OpCharge, providers.OpShip, providers.OpRefund, providers.OpRelease)
		}, []string{audit.RuleCompensated + " o"}},
		{"charged twice under one key", func(b *testBundle) {
			b.order("o", statemachine.StatusCompleted, "")
			b.apply("o", 1, providers.OpReserve, providers.OpCharge, providers.OpShip)
			b.applyTwice("o", providers.ProviderPayment)
		}, []string{audit.RuleCompleted + " o", audit.RuleDoubleKey + " o"}},
		{"effects of an order that does not exist", func(b *testBundle) {
			b.apply("ghost", 1, providers.OpReserve, providers.OpCharge)
		}, []string{audit.RuleOrphan + " ghost"}},
		{"an orphan's key applied twice", func(b *testBundle) {
			b.apply("ghost", 1, providers.OpCharge)
			b.applyTwice("ghost", providers.ProviderPayment)
		}, []string{audit.RuleOrphan + " ghost", audit.RuleDoubleKey + " ghost"}},
		{"two orders under one key", func(b *testBundle) {
			h := statemachine.HashScopedIdempotencyKey("", "k")
			b.bind(h, "first")
			b.order("first", statemachine.StatusRunning, h)
			b.order("second", statemachine.StatusRunning, h)
		}, []string{audit.RuleDuplicateKey + " second"}},
		{"a key whose binding expired", func(b *testBundle) {
			h := statemachine.HashScopedIdempotencyKey("", "long-ago")
			b.order("first", statemachine.StatusRunning, h)
			b.order("second", statemachine.StatusRunning, h)
		}, nil},
		{"an earlier incarnation's effects", func(b *testBundle) {
			// The first order of this ID charged and expired unrefunded (an
			// old bug); the ID's second order completed cleanly.
			b.apply("reused", 1, providers.OpReserve, providers.OpCharge)
			b.order("reused", statemachine.StatusCompleted, "")
			b.incarnation("reused", 2)
			b.apply("reused", 2, providers.OpReserve, providers.OpCharge, providers.OpShip)
		}, nil},
		{"the current incarnation's effects count", func(b *testBundle) {
			b.apply("reused", 1, providers.OpReserve, providers.OpCharge, providers.OpShip)
			b.order("reused", statemachine.StatusCompleted, "")
			b.incarnation("reused", 2)
			b.apply("reused", 2, providers.OpReserve, providers.OpCharge)
		}, []string{audit.RuleCompleted + " reused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
				b := setup(t, r)
				b.cleanRun()
				tc.craft(b)
				rep := b.audit(epoch.Add(time.Minute))
				require.ElementsMatch(t, tc.want, rules(rep), "violations: %v", rep.Violations)
				for _, v := range rep.Violations {
					require.NotEmpty(t, v.Detail)
				}
			})
		})
	}
}

func TestAuditUnfinishedTooLong(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.cleanRun()
		rep := b.audit(epoch.Add(2 * time.Hour))
		require.Equal(t, []string{audit.RuleStuck + " fresh"}, rules(rep))
		require.Equal(t, "still pending after 2h0m0s", rep.Violations[0].Detail)
	})
}

func TestAuditCountsEarlierIncarnations(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.apply("reused", 1, providers.OpReserve, providers.OpCharge)
		b.order("reused", statemachine.StatusCompleted, "")
		b.incarnation("reused", 3)
		b.apply("reused", 2, providers.OpReserve)
		b.apply("reused", 3, providers.OpReserve, providers.OpCharge, providers.OpShip)
		rep := b.audit(epoch.Add(time.Minute))
		require.True(t, rep.OK(), "violations: %v", rep.Violations)
		require.Equal(t, 3, rep.EarlierIncarnations)
		require.Equal(t, map[string]int{"reserve": 3, "charge": 2, "ship": 1}, rep.Effects, "every entry read is counted")
	})
}

// An orphan met in several providers' ledgers is reported once.
func TestAuditReportsAnOrphanOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.apply("ghost", 1, providers.OpReserve, providers.OpCharge, providers.OpShip)
		rep := b.audit(epoch)
		require.Equal(t, []string{audit.RuleOrphan + " ghost"}, rules(rep))
		require.Equal(t, "effects for an order that does not exist: reserve 1, charge 1, ship 1, refund 0, release 0",
			rep.Violations[0].Detail)
		require.Equal(t, map[string]int{"reserve": 1, "charge": 1, "ship": 1}, rep.Effects)
		require.Empty(t, rep.Orders)
	})
}

// The audit reads the orders in batches: many orders created at one time
// (one index score) across many small batches are each audited once.
func TestAuditBatches(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		const n = 23
		for i := range n {
			b.order(fmt.Sprintf("o-%02d", i), statemachine.StatusRunning, "")
		}
		require.NoError(t, b.rdb.Del(t.Context(), statemachine.RecordKey("o-07")).Err()) // expired since indexed
		for _, size := range []int{1, 2, 5, 22, 23, 500} {
			var seen []string
			rep, err := audit.Stream(t.Context(), b.rdb, audit.Config{Now: epoch.Add(2 * time.Hour), BatchSize: size},
				func(v audit.Violation) error {
					seen = append(seen, v.OrderID)
					return nil
				})
			require.NoError(t, err)
			require.Equal(t, map[string]int{"running": n - 1}, rep.Orders, "batch size %d", size)
			require.Len(t, seen, n-1, "batch size %d", size)
			require.Empty(t, rep.Violations, "Stream hands violations on")
		}
	})
}

// WriteJSON writes the report Run returns, a violation at a time.
func TestAuditWriteJSON(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.cleanRun()
		var buf flushCounter
		ok, err := audit.WriteJSON(t.Context(), &buf, b.rdb, audit.Config{Now: epoch, BatchSize: 2})
		require.NoError(t, err)
		require.True(t, ok)
		var got audit.Report
		require.NoError(t, json.Unmarshal(buf.Bytes(), &got), "report %s", buf.String())
		require.Equal(t, b.audit(epoch), &got)
		require.Positive(t, buf.flushes)

		b.apply("ghost", 1, providers.OpCharge)
		b.order("stuck", statemachine.StatusRunning, "")
		buf = flushCounter{}
		ok, err = audit.WriteJSON(t.Context(), &buf, b.rdb, audit.Config{Now: epoch.Add(2 * time.Hour), BatchSize: 2})
		require.NoError(t, err)
		require.False(t, ok)
		got = audit.Report{}
		require.NoError(t, json.Unmarshal(buf.Bytes(), &got), "report %s", buf.String())
		want := b.audit(epoch.Add(2 * time.Hour))
		require.ElementsMatch(t, want.Violations, got.Violations)
		got.Violations = want.Violations
		require.Equal(t, want, &got)
	})
}

// An audit that cannot read Redis fails before writing anything.
func TestAuditWriteJSONWritesNothingWithoutRedis(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	rdb := r.Client(t)
	r.Stop()
	var buf bytes.Buffer
	_, err := audit.WriteJSON(context.Background(), &buf, rdb, audit.Config{})
	require.Error(t, err)
	require.Empty(t, buf.String())
	_, err = audit.Run(context.Background(), rdb, audit.Config{})
	require.Error(t, err)
}

// An audit stops at the first error its consumer returns.
func TestAuditStreamStopsOnEmitError(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.New(t, redistest.BackendMiniredis))
	b.apply("ghost-1", 1, providers.OpCharge)
	b.apply("ghost-2", 1, providers.OpCharge)
	stop := fmt.Errorf("enough")
	calls := 0
	_, err := audit.Stream(t.Context(), b.rdb, audit.Config{}, func(audit.Violation) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
}

// flushCounter is a buffer that counts its flushes.
type flushCounter struct {
	bytes.Buffer
	mu      sync.Mutex
	flushes int
}

// Flush counts a flush.
func (f *flushCounter) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
}
