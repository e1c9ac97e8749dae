package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// v1 and v2 run side by side: the default version changes while v1 orders
// are in flight, and each order finishes on the version it started with.
func TestVersionsRunSideBySide(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		reg := fastRegistry(1, statemachine.OrderV2Options{})
		b := setup(t, r, options{apiRegistry: reg, sim: providers.SimConfig{
			Payment:  providers.Faults{Latency: 200 * time.Millisecond},
			Shipping: providers.Faults{ShipmentDuration: 100 * time.Millisecond},
		}})
		first := b.post(t, order("side-v1", "cust-1"))
		require.Equal(t, 1, first.WorkflowVersion)
		b.waitState(t, "side-v1", settle, statemachine.OrderCharging)

		require.NoError(t, reg.SetDefault(statemachine.OrderWorkflow, 2)) // a deploy switches the default
		second := b.post(t, order("side-v2", "cust-1"))
		require.Equal(t, 2, second.WorkflowVersion)

		for id, want := range map[string][]string{
			"side-v1": {"start", "reserved", "charged", "shipped"},
			"side-v2": {"start", "approved", "reserved", "charged", "shipped"},
		} {
			o := b.waitState(t, id, settle, statemachine.OrderCompleted)
			require.Equal(t, map[string]int{"side-v1": 1, "side-v2": 2}[id], o.WorkflowVersion)
			require.Equal(t, want, b.transitionsOf(t, id), "%s finished on its own version's path", id)
		}
	})
}

// orderflow versions check|migrate, through the engine: orders in flight are
// checked one by one against the new version, and the safe ones moved, each
// with one compare-and-set recorded in its history.
func TestVersionsCheckAndMigrate(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		ctx := context.Background()
		b := setup(t, r, options{noWorker: true, sim: providers.SimConfig{Shipping: providers.Faults{ShipmentDuration: 100 * time.Millisecond}}})
		for _, id := range []string{"mig-1", "mig-2", "mig-held"} {
			b.post(t, order(id, "cust-1"))
		}
		// A worker's lease on mig-held (a step running now) makes it unsafe.
		_, err := b.store.Claim(ctx, "mig-held", "busy-worker", time.Now().Add(time.Minute))
		require.NoError(t, err)

		eng, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, b.store,
			fastRegistry(1, statemachine.OrderV2Options{}), nil, tasks.NewQueue(b.client(), tasks.QueueConfig{}), nil)
		require.NoError(t, err)
		checks := map[string]statemachine.MigrationCheck{}
		require.NoError(t, b.store.Running(ctx, statemachine.OrderWorkflow, 1, func(in *statemachine.Instance) error {
			c, err := eng.CheckMigration(ctx, in.ID, 2, nil)
			checks[in.ID] = c
			return err
		}))
		require.Len(t, checks, 3)
		require.True(t, checks["mig-1"].Safe, "%v", checks["mig-1"].Problems)
		require.False(t, checks["mig-held"].Safe)
		require.Contains(t, checks["mig-held"].Problems[0], "a worker is running it now")
		bad, err := eng.CheckMigration(ctx, "mig-1", 2, map[string]string{statemachine.OrderPending: "nowhere"})
		require.NoError(t, err)
		require.False(t, bad.Safe)
		require.Contains(t, bad.Problems[0], `no state "nowhere"`)
		require.Equal(t, 1, b.get(t, "mig-1").WorkflowVersion, "a check changes nothing")

		for _, id := range []string{"mig-1", "mig-2", "mig-held"} {
			_, err := eng.Migrate(ctx, id, 2, nil)
			require.NoError(t, err)
		}
		require.Equal(t, 2, b.get(t, "mig-1").WorkflowVersion)
		require.Equal(t, 1, b.get(t, "mig-held").WorkflowVersion, "an unsafe order is left as it is")
		var migrated bool
		for _, ev := range b.history(t, "mig-1") {
			migrated = migrated || ev.Type == statemachine.EventMigrated
		}
		require.True(t, migrated, "the move is in the history")

		b.startWorker(t, options{})
		for _, id := range []string{"mig-1", "mig-2"} {
			b.waitState(t, id, settle, statemachine.OrderCompleted)
			require.Equal(t, []string{"start", "approved", "reserved", "charged", "shipped"}, b.transitionsOf(t, id), "%s ran on v2", id)
		}
	})
}
