package engine_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// startReplica starts a redis-server replicating master and waits until
// the master counts it.
func startReplica(t *testing.T, master *redistest.Instance) *redistest.Server {
	t.Helper()
	host, port, _ := strings.Cut(master.Addr, ":")
	rep := redistest.StartServer(t, redistest.Options{Args: []string{"--replicaof", host, port}})
	c := master.Client(t)
	require.Eventually(t, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}, 10*time.Second, 10*time.Millisecond, "the replica never came online")
	return rep
}

func orderInput(t *testing.T) []byte {
	t.Helper()
	input, err := json.Marshal(orders.Input{CustomerID: "c", Currency: "USD", AmountCents: 100,
		Items: []orders.Item{{SKU: "A", Qty: 1, UnitPriceCents: 100}}})
	require.NoError(t, err)
	return input
}

// With --durability replicas=N an order is acknowledged, and a step's
// provider call is made, only once N replicas have the write that precedes
// it. Without the replicas nothing is acknowledged and no provider is
// called; with them the order runs as usual.
func TestDurabilityReplicasGatesAcknowledgementsAndEffects(t *testing.T) {
	t.Parallel()
	master := redistest.New(t, redistest.BackendRedis)
	durable := statemachine.StoreConfig{Durability: statemachine.Durability{Mode: statemachine.DurabilityReplicas, Replicas: 1, Timeout: time.Second}}

	b := setup(t, master, setupOpts{storeCfg: durable})
	warnings, err := b.store.CheckDurability(context.Background())
	require.NoError(t, err)
	require.Len(t, warnings, 1, "no replica is connected")

	_, err = b.eng.Start(context.Background(), engine.StartRequest{ID: "o1", Workflow: statemachine.OrderWorkflow, Input: orderInput(t), Fingerprint: "fp"})
	require.ErrorIs(t, err, statemachine.ErrNotDurable, "no acknowledgement without the replica")

	// An order written without the setting (before it was turned on): a
	// worker with replicas=1 makes no provider call without the replica.
	plain := setup(t, master, setupOpts{})
	plain.start(t, "o2")
	err = b.eng.Advance(context.Background(), "o2", engine.AdvanceOptions{Queue: statemachine.DefaultQueue})
	require.ErrorIs(t, err, statemachine.ErrNotDurable)
	require.Zero(t, b.prov.Applied(providers.OpReserve), "the provider is not called after a write that is not durable")
	require.Empty(t, b.load(t, "o2").LeaseToken, "the lease is given back")

	startReplica(t, master)
	warnings, err = b.store.CheckDurability(context.Background())
	require.NoError(t, err)
	require.Empty(t, warnings)
	b.start(t, "o3")
	b.advance(t, "o3")
	require.Equal(t, statemachine.OrderCompleted, b.load(t, "o3").State)
	b.advance(t, "o2")
	require.Equal(t, statemachine.OrderCompleted, b.load(t, "o2").State)
}

// While the replicas are away (a failover left the master without one, a
// replica resynchronises), a step's tries use up no attempt: after the first
// write that fails its wait, the store holds durable writes back, writing
// nothing, until enough replicas are in sync again. Otherwise an outage of
// the replicas would fail orders.
func TestDurabilityOutageUsesNoAttempts(t *testing.T) {
	t.Parallel()
	master := redistest.New(t, redistest.BackendRedis)
	durable := statemachine.StoreConfig{Durability: statemachine.Durability{Mode: statemachine.DurabilityReplicas, Replicas: 1, Timeout: 200 * time.Millisecond}}
	b := setup(t, master, setupOpts{storeCfg: durable})
	plain := setup(t, master, setupOpts{})
	plain.start(t, "o1")

	for range 10 {
		err := b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue})
		require.ErrorIs(t, err, statemachine.ErrNotDurable)
	}
	in := b.load(t, "o1")
	require.Equal(t, 1, in.Attempts[statemachine.StepReserve], "only the first try wrote an attempt")
	require.Zero(t, b.prov.Applied(providers.OpReserve))

	startReplica(t, master)
	require.Eventually(t, func() bool {
		return b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}) == nil
	}, 10*time.Second, 150*time.Millisecond, "the step goes on once the replica is in sync")
	require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)
}

// --durability fsync checks at start-up that Redis runs appendonly with
// appendfsync always, and warns otherwise.
func TestDurabilityFsyncWarnsWithoutAppendfsyncAlways(t *testing.T) {
	t.Parallel()
	fsync := statemachine.StoreConfig{Durability: statemachine.Durability{Mode: statemachine.DurabilityFsync}}
	for _, always := range []bool{false, true} {
		t.Run(strconv.FormatBool(always), func(t *testing.T) {
			t.Parallel()
			s := redistest.StartServer(t, redistest.Options{AppendFsyncAlways: always})
			c := redis.NewClient(&redis.Options{Addr: s.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			store := statemachine.NewStore(c, fsync)
			t.Cleanup(store.Close)
			warnings, err := store.CheckDurability(context.Background())
			require.NoError(t, err)
			if always {
				require.Empty(t, warnings)
			} else {
				require.Len(t, warnings, 1)
				require.Contains(t, warnings[0], "appendfsync")
			}
		})
	}
}

// Compensation is driven by keys, not only by what the record remembers.
// A write that began the charge can be lost (appendfsync everysec, a
// failover) after the charge was made; the record then shows the order
// still reserving. A cancel now sends a refund by key, which refunds the
// charge the record forgot. Before the fix a cancel while reserving only
// released the stock, and the customer stayed charged.
func TestCompensationRefundsAChargeTheRecordLost(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		b.start(t, "o1")
		// The reservation ran and was recorded; then the charge was made,
		// but the write that began it was lost.
		in := b.load(t, "o1")
		var f statemachine.Fields
		f.Attempt(statemachine.StepReserve, 1)
		_, err := b.store.Apply(context.Background(), statemachine.Change{ID: "o1", ExpectState: in.State, ExpectRev: in.Rev,
			Lease: statemachine.LeaseIgnore, State: statemachine.OrderReserving, Status: statemachine.StatusRunning, Fields: f,
			Event: &statemachine.Event{Type: statemachine.EventTransition, Event: "start", From: in.State, To: statemachine.OrderReserving}})
		require.NoError(t, err)
		key := providers.IdempotencyKey("o1", providers.OpReserve)
		_, err = b.prov.Reserve(context.Background(), providers.ReserveRequest{IdempotencyKey: key, OrderID: "o1", Items: []providers.Item{{SKU: "A", Qty: 1}}})
		require.NoError(t, err)
		_, err = b.prov.Charge(context.Background(), providers.ChargeRequest{IdempotencyKey: providers.IdempotencyKey("o1", providers.OpCharge),
			OrderID: "o1", CustomerID: "c", AmountCents: 100, Currency: "USD"})
		require.NoError(t, err)

		outcome, _, err := b.eng.Signal(context.Background(), "o1", statemachine.SignalCancel, "")
		require.NoError(t, err)
		require.Equal(t, engine.SignalRecorded, outcome)
		b.advance(t, "o1")
		require.Equal(t, statemachine.OrderCancelled, b.load(t, "o1").State)
		require.Equal(t, 1, b.prov.Applied(providers.OpCharge))
		require.Equal(t, 1, b.prov.Applied(providers.OpRefund), "the forgotten charge was refunded by key")
		require.Equal(t, 1, b.prov.Applied(providers.OpRelease))
	})
}

// An order ID reused after its order expired starts a new incarnation whose
// provider keys carry "~2": it never meets the answers its earlier order
// got. Before the fix the new order replayed the old answers (a released
// reservation, a refunded charge) and shipped on them.
func TestReusedIDGetsProviderKeysOfItsOwn(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		var prefixes []string
		b.eng = newEngine(t, b, func() engine.Activities {
			acts := orders.Activities(b.prov.Set())
			reserve := acts[statemachine.StepReserve]
			acts[statemachine.StepReserve] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
				prefixes = append(prefixes, in.KeyPrefix())
				return reserve(ctx, in)
			}
			return acts
		}())
		b.start(t, "o1")
		b.advance(t, "o1")
		first := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, first.State)
		require.Equal(t, 1, first.Incarnation)

		// Retention passes: the record and its history expire.
		ctx := context.Background()
		require.NoError(t, b.store.Redis().Del(ctx, statemachine.RecordKey("o1"), statemachine.HistoryKey("o1")).Err())
		b.start(t, "o1")
		// The new order's first task carries only a hint: the incarnation
		// is learned from the first write.
		input := orderInput(t)
		d, _ := b.reg.Default(statemachine.OrderWorkflow)
		hint := &engine.Hint{Workflow: d.Name, Version: d.Version, State: d.Initial, Rev: 1, Input: input, At: time.Now()}
		require.NoError(t, b.eng.Advance(ctx, "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue, Hint: hint}))
		second := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, second.State)
		require.Equal(t, 2, second.Incarnation)
		require.Equal(t, []string{"o1", "o1~2"}, prefixes)
		require.Equal(t, 2, b.prov.Applied(providers.OpReserve), "a reservation of its own")
		require.Equal(t, 2, b.prov.Applied(providers.OpShip))
		require.NotEqual(t, first.Results[orders.ResultReservationID], second.Results[orders.ResultReservationID])
	})
}
