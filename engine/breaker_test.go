package engine_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The breaker suite: interleavings of migrations, signals, pause and
// resume, crashes and flow control aimed at the newer code paths. Each test
// failed on the engine (or the order activities) before its fix.

// bothVersions is the order workflow's versions 1 and 2 (v2 reserving at
// east and west) with fast retries, new orders taking version v.
func bothVersions(v int) *statemachine.Registry {
	r := statemachine.NewRegistry()
	for _, d := range []*statemachine.Definition{statemachine.OrderV1(), statemachine.OrderV2(statemachine.OrderV2Options{Warehouses: []string{"east", "west"}})} {
		for i := range d.States {
			d.States[i].Retry.InitialInterval, d.States[i].Retry.MaxInterval = time.Millisecond, 5*time.Millisecond
		}
		r.MustRegister(d)
	}
	if err := r.SetDefault(statemachine.OrderWorkflow, v); err != nil {
		panic(err)
	}
	return r
}

// signalDuring wraps step so that its first call sends the signals (in
// order) to the instance before it does its work.
func signalDuring(eng **engine.Engine, step string, signals ...string) func(engine.Activities) engine.Activities {
	return func(a engine.Activities) engine.Activities {
		act := a[step]
		var once sync.Once
		a[step] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
			once.Do(func() {
				for _, s := range signals {
					if _, _, err := (*eng).Signal(context.WithoutCancel(ctx), in.ID, s, "test"); err != nil {
						panic(err)
					}
				}
			})
			return act(ctx, in)
		}
		return a
	}
}

// A version 2 order cancelled while it reserved at every warehouse holds
// one reservation per warehouse, recorded per branch; it compensates in
// refunding, then releasing. An operator pauses it there and migrates it to
// version 1 (same state, same refund step: CheckMigration finds it safe),
// then resumes it. Version 1's release knew only the single reservation of
// a version 1 order and found "nothing reserved": the order ended cancelled
// with both warehouses' stock still held.
func TestMigratedFanoutOrderReleasesEveryWarehouse(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		ctx := context.Background()
		var eng *engine.Engine
		b := setup(t, r, setupOpts{registry: bothVersions(2),
			activities: signalDuring(&eng, statemachine.StepReserveAt, statemachine.SignalCancel, engine.SignalPause)})
		eng = b.eng
		b.start(t, "o1")
		b.advance(t, "o1")

		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderRefunding, in.State)
		require.True(t, in.Paused)
		require.Equal(t, 2, b.prov.Applied(providers.OpReserve), "reserved at both warehouses before the cancel was acted on")

		c, err := eng.Migrate(ctx, "o1", 1, nil)
		require.NoError(t, err)
		require.True(t, c.Safe, "%v", c.Problems)
		if !c.Safe {
			return
		}
		_, _, err = eng.Signal(ctx, "o1", engine.SignalResume, "")
		require.NoError(t, err)
		b.drain(t)

		in = b.load(t, "o1")
		require.Equal(t, statemachine.OrderCancelled, in.State, "last error %q", in.LastError)
		require.Equal(t, 1, in.Version)
		require.Equal(t, 2, b.prov.Applied(providers.OpRelease), "every warehouse's reservation is released (reserved %d)", b.prov.Applied(providers.OpReserve))
	})
}

// A fan-out step governed by flow control (here a concurrency limit on
// reserve_at per customer, one at a time) is admitted like any step, but
// its admission was settled only by the next single step of the same run.
// When the run ended after the fan-out (a branch's 503 scheduled a retry;
// likewise a hand-off to another queue, a pause, a park), the admission
// was dropped unsettled: its slot was kept, renewed for as long as the
// worker lived, and the retry, which waits for the instance's own earlier
// slot like anyone's, parked in reserving for good, as did every later
// order of the customer. (With a breaker, a half-open probe made by such a
// fan-out never came back, holding the provider's circuit half-open.)
func TestFanoutAdmissionIsSettled(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		flow, err := flowcontrol.New(r.Client(t), flowcontrol.Config{
			Limits: []flowcontrol.Limit{{Step: statemachine.StepReserveAt, Field: "customer_id", Max: 1}},
			Lease:  time.Second, JanitorInterval: 100 * time.Millisecond, Logger: discardLogger(),
		}, nil)
		require.NoError(t, err)
		unavailable := func() error {
			return &providers.Error{Provider: providers.ProviderInventory, Op: providers.OpReserve, Status: http.StatusServiceUnavailable}
		}
		b := setup(t, r, setupOpts{registry: bothVersions(2), cfg: engine.Config{Flow: flow, ParkRecheck: 200 * time.Millisecond},
			activities: answerFirst(statemachine.StepReserveAt, 1, false, unavailable)})
		flow.Attach(b.eng)

		b.start(t, "o1")
		deadline := time.Now().Add(4 * time.Second) // four flow leases
		for time.Now().Before(deadline) && b.load(t, "o1").State != statemachine.OrderCompleted {
			b.advance(t, "o1")
			time.Sleep(100 * time.Millisecond)
		}
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, in.State,
			"the retried fan-out gets the slot its first attempt held (state %s, last error %q)", in.State, in.LastError)
	})
}

// An operator moves a version 2 order waiting for a human's review to
// version 1, mapping in_review (which version 1 lacks) to shipping.
// Version 2's charging and shipping declare the results they need
// (State.Requires), which is how CheckMigration refuses such a move, but
// version 1's declared none: the check found the move safe, and the order
// shipped unreserved and unpaid.
func TestMigrationCannotSkipToShippingUnpaid(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		ctx := context.Background()
		b := setup(t, r, setupOpts{registry: bothVersions(2)})
		b.prov.ReviewCustomers = map[string]bool{"c": true}
		b.start(t, "o1")
		b.advanceNow(t, "o1")
		require.Equal(t, statemachine.OrderInReview, b.load(t, "o1").State)

		for _, to := range []string{statemachine.OrderShipping, statemachine.OrderCharging} {
			c, err := b.eng.Migrate(ctx, "o1", 1, map[string]string{statemachine.OrderInReview: to})
			require.NoError(t, err)
			require.False(t, c.Safe, "moving an order with nothing reserved nor charged into %s is not safe", to)
		}
		b.advanceNow(t, "o1")
		in := b.load(t, "o1")
		require.Equal(t, 2, in.Version)
		require.Zero(t, b.prov.Applied(providers.OpShip), "nothing shipped")
		require.Zero(t, b.prov.Applied(providers.OpCharge), "nothing charged")
	})
}

// advanceNow advances id and runs the tasks queued meanwhile that are due
// within a second (a review's deadline task is left alone).
func (b *testBundle) advanceNow(t *testing.T, id string) {
	t.Helper()
	require.NoError(t, b.eng.Advance(context.Background(), id, engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
	for range 100 {
		ts := b.queue.take()
		ran := 0
		for _, task := range ts {
			if task.Delay > time.Second {
				continue
			}
			ran++
			time.Sleep(task.Delay)
			require.NoError(t, b.eng.Advance(context.Background(), task.InstanceID, engine.AdvanceOptions{Queue: task.Queue, TaskID: task.TaskID}))
		}
		if ran == 0 {
			return
		}
	}
	t.Fatal("tasks kept coming")
}
