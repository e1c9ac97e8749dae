package e2e

import (
	"cmp"
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// workerArgs runs a worker process against the bundle's Redis and
// simulators, with a short lease so that a dead worker's orders resume fast.
func (b *testBundle) workerArgs(lease string) []string {
	pc := b.sim.HTTPConfig()
	return []string{"worker",
		"--redis-url", b.redis.URL,
		"--payment-url", pc.PaymentURL, "--inventory-url", pc.InventoryURL, "--shipping-url", pc.ShippingURL,
		"--provider-timeout", "30s", "--lease", lease, "--reaper-interval", "200ms",
		"--task-check-interval", "20ms", "--log-format", "text",
	}
}

// TestKilledWorkerResumesWithOneCharge starts `orderflow worker` as a real
// process, SIGKILLs it while its charge call hangs after the charge was
// applied, and checks that a new worker finishes the order with exactly one
// charge. It reports how long the resume took.
func TestKilledWorkerResumesWithOneCharge(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true, sim: providers.SimConfig{
			// The charge is applied, then its answer never comes.
			Payment: providers.Faults{TimeoutRate: 1, TimeoutHold: time.Minute},
		}})
		lease := cmp.Or(os.Getenv("E2E_CRASH_LEASE"), "1s")
		w1 := startProcess(t, b.workerArgs(lease)...)
		b.post(t, order("crash-1", "cust-1"))
		waitFor(t, settle, "the charge to be applied", func() bool { return b.effects(t, "crash-1")["charge"] == 1 })
		require.Equal(t, statemachine.OrderCharging, b.get(t, "crash-1").State)

		w1.signal(syscall.SIGKILL)
		killed := time.Now()
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{}))
		startProcess(t, b.workerArgs(lease)...)

		var resumed time.Duration
		waitFor(t, settle, "the order to move past charging", func() bool {
			if b.get(t, "crash-1").State != statemachine.OrderCharging {
				resumed = time.Since(killed)
				return true
			}
			return false
		})
		o := b.waitState(t, "crash-1", settle, statemachine.OrderCompleted)
		t.Logf("%s: a killed worker's order resumed %s after SIGKILL (lease %s, reaper every 200ms)", r.Backend, resumed.Round(time.Millisecond), lease)
		d, err := time.ParseDuration(lease)
		require.NoError(t, err)
		require.Less(t, resumed, d+3*time.Second)
		require.GreaterOrEqual(t, o.Attempts["charge"], 2)
		b.requireEffects(t, "crash-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})
	})
}

// TestWorkerStopsGracefully sends SIGTERM to a worker with a step in flight:
// it must exit 0, and the order must finish with one charge once another
// worker runs.
func TestWorkerStopsGracefully(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true, sim: providers.SimConfig{
			Payment: providers.Faults{Latency: 500 * time.Millisecond},
		}})
		w1 := startProcess(t, b.workerArgs("5s")...)
		b.post(t, order("term-1", "cust-1"))
		b.waitState(t, "term-1", settle, statemachine.OrderCharging)
		w1.signal(syscall.SIGTERM)
		require.Equal(t, 0, w1.exitCode(), "output: %s", w1.out.String())
		// The step in flight finished and was recorded before the exit.
		o := b.get(t, "term-1")
		require.NotEqual(t, statemachine.OrderCharging, o.State, "the running step must finish before the exit")
		require.NotEmpty(t, o.TransactionID)

		startProcess(t, b.workerArgs("5s")...)
		b.waitState(t, "term-1", settle, statemachine.OrderCompleted)
		b.requireEffects(t, "term-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})
		ctx := context.Background()
		entries, err := b.ledger.ForOrder(ctx, "term-1")
		require.NoError(t, err)
		require.Len(t, entries, 3)
	})
}
