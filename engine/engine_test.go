package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// memQueue records the tasks the engine queues; tests run them by hand.
type memQueue struct {
	mu    sync.Mutex
	tasks []engine.Task
}

func (q *memQueue) Enqueue(_ context.Context, t engine.Task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tasks = append(q.tasks, t)
	return nil
}

func (q *memQueue) Waiting(context.Context, string, string) (bool, error) { return false, nil }

// take removes and returns the queued tasks.
func (q *memQueue) take() []engine.Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.tasks
	q.tasks = nil
	return out
}

type testBundle struct {
	store *statemachine.Store
	queue *memQueue
	prov  *providers.InProcess
	eng   *engine.Engine
	reg   *statemachine.Registry
}

type setupOpts struct {
	cfg        engine.Config
	registry   *statemachine.Registry
	activities func(engine.Activities) engine.Activities
	metrics    *engine.Metrics
	storeCfg   statemachine.StoreConfig
}

func setup(t testing.TB, r *redistest.Instance, o setupOpts) *testBundle {
	t.Helper()
	store := statemachine.NewStore(r.Client(t), o.storeCfg)
	t.Cleanup(store.Close)
	b := &testBundle{store: store, queue: &memQueue{}, prov: providers.NewInProcess(), reg: o.registry}
	if b.reg == nil {
		d := statemachine.OrderV1()
		for i := range d.States {
			d.States[i].Retry.InitialInterval, d.States[i].Retry.MaxInterval = time.Millisecond, 5*time.Millisecond
		}
		b.reg = statemachine.NewRegistry().MustRegister(d)
	}
	acts := orders.Activities(b.prov.Set())
	if o.activities != nil {
		acts = o.activities(acts)
	}
	cfg := o.cfg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.Lease = max(cfg.Lease, 300*time.Millisecond)
	var err error
	b.eng, err = engine.New(cfg, store, b.reg, acts, b.queue, o.metrics)
	require.NoError(t, err)
	return b
}

func (b *testBundle) start(t testing.TB, id string) {
	t.Helper()
	input, err := json.Marshal(orders.Input{CustomerID: "c", Currency: "USD", AmountCents: 100,
		Items: []orders.Item{{SKU: "A", Qty: 1, UnitPriceCents: 100}}})
	require.NoError(t, err)
	_, err = b.eng.Start(context.Background(), engine.StartRequest{ID: id, Workflow: statemachine.OrderWorkflow, Input: input, Fingerprint: "fp"})
	require.NoError(t, err)
	b.queue.take()
}

// drain runs queued tasks (after their delay) until none is left.
func (b *testBundle) drain(t *testing.T) {
	t.Helper()
	for range 100 {
		ts := b.queue.take()
		if len(ts) == 0 {
			return
		}
		for _, task := range ts {
			time.Sleep(task.Delay)
			require.NoError(t, b.eng.Advance(context.Background(), task.InstanceID, engine.AdvanceOptions{Queue: task.Queue, TaskID: task.TaskID}))
		}
	}
	t.Fatal("tasks kept coming")
}

func (b *testBundle) advance(t *testing.T, id string) {
	t.Helper()
	require.NoError(t, b.eng.Advance(context.Background(), id, engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
	b.drain(t)
}

func (b *testBundle) load(t *testing.T, id string) *statemachine.Instance {
	t.Helper()
	in, err := b.store.Load(context.Background(), id)
	require.NoError(t, err)
	return in
}

func transitions(t *testing.T, s *statemachine.Store, id string) []string {
	t.Helper()
	evs, err := s.History(context.Background(), id)
	require.NoError(t, err)
	var out []string
	for _, ev := range evs {
		if ev.Type == statemachine.EventTransition {
			out = append(out, ev.Event)
		}
	}
	return out
}

func TestAdvanceRunsToCompletion(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		b.start(t, "o1")
		b.advance(t, "o1")
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, in.State)
		require.Equal(t, []string{"start", "reserved", "charged", "shipped"}, transitions(t, b.store, "o1"))
		require.Equal(t, 1, b.prov.Applied(providers.OpCharge))
		require.Empty(t, in.LeaseToken, "a finished instance holds no lease")
	})
}

func TestConcurrentAdvancesApplyEachTransitionOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		b.start(t, "o1")
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_ = b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue})
			})
		}
		wg.Wait()
		b.drain(t)
		// Whoever lost the lease left; the due index brings it back if the
		// winner died, so finish by hand here.
		b.advance(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)
		require.Equal(t, []string{"start", "reserved", "charged", "shipped"}, transitions(t, b.store, "o1"))
		for _, op := range []string{providers.OpReserve, providers.OpCharge, providers.OpShip} {
			require.Equal(t, 1, b.prov.Applied(op), op)
		}
	})
}

func TestMissingVersionIsLoudAndRetried(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		b.start(t, "o1")
		// A worker that only knows another workflow version.
		v2 := statemachine.OrderV1()
		v2.Version = 2
		other, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, b.store,
			statemachine.NewRegistry().MustRegister(v2), orders.Activities(b.prov.Set()), b.queue, nil)
		require.NoError(t, err)
		err = other.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue})
		require.ErrorIs(t, err, statemachine.ErrUnknownVersion)
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderPending, in.State)
		require.Empty(t, in.LeaseToken, "the lease is given back for a worker that has the version")
		b.advance(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)
	})
}

func TestStepOnAnotherQueueIsHandedOff(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		d := statemachine.OrderV1()
		for i := range d.States {
			if d.States[i].Step == statemachine.StepCharge {
				d.States[i].Queue = "payments"
			}
		}
		// A worker that serves every queue but payments.
		b := setup(t, r, setupOpts{registry: statemachine.NewRegistry().MustRegister(d),
			cfg: engine.Config{Queues: notPayments}})
		b.start(t, "o1")
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, statemachine.OrderCharging, b.load(t, "o1").State)
		ts := b.queue.take()
		require.Len(t, ts, 1)
		require.Equal(t, "payments", ts[0].Queue)
		require.Equal(t, 0, b.prov.Applied(providers.OpCharge), "the charge runs on the payments queue")
		// A run from the payments queue goes on inline into shipping: the
		// worker serves the shipping queue, and nothing waits there.
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: "payments"}))
		require.Empty(t, b.queue.take())
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, in.State)
		require.Equal(t, 1, in.Attempts[statemachine.StepCharge])
	})
}

// A run goes on inline into a step of another queue only while nothing
// waits in that queue: with a backlog there, the order queues behind it and
// the worker's weights decide.
func TestStepOnAQueueWithABacklogIsHandedOff(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		d := statemachine.OrderV1()
		for i := range d.States {
			if d.States[i].Step == statemachine.StepCharge {
				d.States[i].Queue = "payments"
			}
		}
		var backlog atomic.Int64
		backlog.Store(7)
		b := setup(t, r, setupOpts{registry: statemachine.NewRegistry().MustRegister(d),
			cfg: engine.Config{Backlog: func(q string) int64 {
				if q == "payments" {
					return backlog.Load()
				}
				return 0
			}}})
		b.start(t, "o1")
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, statemachine.OrderCharging, b.load(t, "o1").State)
		ts := b.queue.take()
		require.Len(t, ts, 1)
		require.Equal(t, "payments", ts[0].Queue)

		backlog.Store(0)
		b.start(t, "o2")
		require.NoError(t, b.eng.Advance(context.Background(), "o2", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o2").State, "no backlog: inline, without a hop")
		require.Empty(t, b.queue.take())
	})
}

// notPayments are the queues of a worker that serves every queue of the
// order workflow but payments.
var notPayments = map[string]int{statemachine.DefaultQueue: 1, statemachine.QueueInventory: 1, statemachine.QueueShipping: 1}

// heldCharge makes the charge step signal running when it starts and wait
// until release is closed.
func heldCharge(running chan<- struct{}, release <-chan struct{}) func(engine.Activities) engine.Activities {
	return func(a engine.Activities) engine.Activities {
		charge := a[statemachine.StepCharge]
		a[statemachine.StepCharge] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
			running <- struct{}{}
			<-release
			return charge(ctx, in)
		}
		return a
	}
}

// advanceAsync advances id in the background; the channel gets the result.
func (b *testBundle) advanceAsync(id string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- b.eng.Advance(context.Background(), id, engine.AdvanceOptions{Queue: statemachine.DefaultQueue})
	}()
	return done
}

func TestSlowStepRenewsItsLease(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		release := make(chan struct{})
		running := make(chan struct{}, 1)
		b := setup(t, r, setupOpts{cfg: engine.Config{Lease: 300 * time.Millisecond}, activities: heldCharge(running, release)})
		b.start(t, "o1")
		done := b.advanceAsync("o1")
		<-running
		// Three leases later, the lease is still held: nobody can take it.
		deadline := time.Now().Add(900 * time.Millisecond)
		for time.Now().Before(deadline) {
			_, err := b.store.Claim(context.Background(), "o1", "intruder", time.Now().Add(time.Second))
			require.ErrorIs(t, err, statemachine.ErrLeased)
			time.Sleep(50 * time.Millisecond)
		}
		close(release)
		require.NoError(t, <-done)
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)
	})
}

func TestCancelDuringStepRecordsResultThenCompensates(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		release := make(chan struct{})
		running := make(chan struct{}, 1)
		b := setup(t, r, setupOpts{activities: heldCharge(running, release)})
		b.start(t, "o1")
		done := b.advanceAsync("o1")
		<-running
		outcome, in, err := b.eng.Signal(context.Background(), "o1", statemachine.SignalCancel, "")
		require.NoError(t, err)
		require.Equal(t, engine.SignalRecorded, outcome)
		require.True(t, in.Signals[statemachine.SignalCancel])
		close(release)
		require.NoError(t, <-done)
		b.drain(t)

		in = b.load(t, "o1")
		require.Equal(t, statemachine.OrderCancelled, in.State)
		require.NotEmpty(t, in.Results[orders.ResultTransactionID], "the charge that happened is recorded")
		require.NotEmpty(t, in.Results[orders.ResultRefundID])
		require.Equal(t, []string{"start", "reserved", "cancel", "refunded", "release_cancelled"}, transitions(t, b.store, "o1"))
		require.Equal(t, 1, b.prov.Applied(providers.OpCharge))
		require.Equal(t, 1, b.prov.Applied(providers.OpRefund))
		require.Equal(t, 1, b.prov.Applied(providers.OpRelease))

		outcome, _, err = b.eng.Signal(context.Background(), "o1", statemachine.SignalCancel, "")
		require.NoError(t, err)
		require.Equal(t, engine.SignalReplayed, outcome)
	})
}

func TestStoppingEngineHandsOffAtStepBoundary(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		var eng atomic.Pointer[engine.Engine]
		b := setup(t, r, setupOpts{activities: func(a engine.Activities) engine.Activities {
			reserve := a[statemachine.StepReserve]
			a[statemachine.StepReserve] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
				eng.Load().Stop() // the worker is asked to stop mid-step
				return reserve(ctx, in)
			}
			return a
		}})
		eng.Store(b.eng)
		b.start(t, "o1")
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCharging, in.State, "the running step finished and was recorded")
		require.Empty(t, in.LeaseToken, "the stopping worker released the lease")
		require.Equal(t, 0, in.Attempts[statemachine.StepCharge], "no attempt of the next step was begun")
		ts := b.queue.take()
		require.Len(t, ts, 1, "the order was handed to a new task")
	})
}

func TestReaperResumesAfterLeaseExpiry(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{cfg: engine.Config{Lease: 300 * time.Millisecond}})
		b.start(t, "o1")
		// A worker claims the order and dies without a word.
		_, err := b.store.Claim(context.Background(), "o1", "dead-worker", time.Now().Add(300*time.Millisecond))
		require.NoError(t, err)
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, statemachine.OrderPending, b.load(t, "o1").State, "the live lease keeps others out")
		require.Empty(t, b.queue.take())

		var n int
		require.Eventually(t, func() bool {
			n, err = b.eng.Reap(context.Background())
			require.NoError(t, err)
			return n == 1
		}, 3*time.Second, 20*time.Millisecond)
		b.drain(t)
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)
		b.store.FlushDue()
		due, err := b.store.DueBefore(context.Background(), time.Now().Add(time.Hour), 10)
		require.NoError(t, err)
		require.Empty(t, due, "a finished order leaves the due index")
	})
}

// The API queues an instance's first task, then writes the instance. A task
// that overtakes the write waits for it; one whose instance never came
// (the API's request failed) gives up after FirstTaskGrace.
func TestFirstTaskThatOvertakesItsInstance(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{cfg: engine.Config{FirstTaskGrace: 300 * time.Millisecond}})
		d, _ := b.reg.Default(statemachine.OrderWorkflow)
		input := []byte(`{"customer_id":"c","currency":"USD","amount_cents":100,"items":[{"sku":"A","qty":1,"unit_price_cents":100}]}`)
		hint := &engine.Hint{Workflow: d.Name, Version: d.Version, State: d.Initial, Rev: 1, Input: input, At: time.Now()}
		opt := engine.AdvanceOptions{Queue: statemachine.DefaultQueue, Hint: hint}

		// No instance yet: the task asks to be retried shortly.
		require.ErrorIs(t, b.eng.Advance(context.Background(), "o1", opt), engine.ErrNotReady)
		// The instance is written while the task waits: it runs.
		done := make(chan error, 1)
		go func() { done <- b.eng.Advance(context.Background(), "o1", opt) }()
		_, err := b.store.Create(context.Background(), statemachine.NewInstance{
			ID: "o1", Definition: d, Fingerprint: "fp", Input: input, Task: engine.InitialTaskID("o1"), Due: time.Now().Add(time.Minute),
		})
		require.NoError(t, err)
		if err := <-done; errors.Is(err, engine.ErrNotReady) {
			// The write came after the task's short wait; asynq retries it.
			require.NoError(t, b.eng.Advance(context.Background(), "o1", opt))
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)

		// A task whose instance never came gives up once the grace is over.
		late := *hint
		late.At = time.Now().Add(-time.Second)
		require.NoError(t, b.eng.Advance(context.Background(), "never", engine.AdvanceOptions{Queue: statemachine.DefaultQueue, Hint: &late}))
	})
}

func TestAttemptsUsedByCrashesEndTheStep(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		ctx := context.Background()
		// Six workers each began an attempt of the reservation and died.
		b.start(t, "o2")
		var f statemachine.Fields
		f.Attempt(statemachine.StepReserve, 6)
		inst, err := b.store.Claim(ctx, "o2", "dead", time.Now().Add(time.Hour))
		require.NoError(t, err)
		_, err = b.store.Apply(ctx, statemachine.Change{ID: "o2", ExpectState: inst.State, ExpectRev: inst.Rev,
			Lease: statemachine.LeaseHold, Token: "dead", State: statemachine.OrderReserving, Status: statemachine.StatusRunning,
			Fields: f}) // the zero LeaseUntil: the dead worker's lease is gone
		require.NoError(t, err)
		b.advance(t, "o2")
		in := b.load(t, "o2")
		require.Equal(t, statemachine.OrderFailed, in.State)
		// The last attempt's outcome was unknown: the compensation refunds
		// by key (nothing was charged) and the release settles it.
		require.Equal(t, []string{"reserve_unsettled", "refunded", "released"}, transitions(t, b.store, "o2"))
		require.Equal(t, 1, b.prov.Applied(providers.OpReserve), "the settling call")
		require.Equal(t, 1, b.prov.Applied(providers.OpRelease))
	})
}

// asynq schedules in whole seconds, so a retry task can arrive before the
// retry is due. The run must wait for it, not drop the order.
func TestEarlyRetryTaskWaitsForTheRetry(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		d := statemachine.OrderV1()
		for i := range d.States {
			d.States[i].Retry.InitialInterval, d.States[i].Retry.MaxInterval = 400*time.Millisecond, 400*time.Millisecond
		}
		var calls atomic.Int32
		b := setup(t, r, setupOpts{registry: statemachine.NewRegistry().MustRegister(d), activities: func(a engine.Activities) engine.Activities {
			charge := a[statemachine.StepCharge]
			a[statemachine.StepCharge] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
				if calls.Add(1) == 1 {
					return nil, &providers.Error{Provider: "payment", Op: "charge", Status: 503}
				}
				return charge(ctx, in)
			}
			return a
		}, cfg: engine.Config{Rand: func() float64 { return 0.999 }}})
		b.start(t, "o1")
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderCharging, in.State)
		require.True(t, in.NextAt.After(time.Now()))
		ts := b.queue.take()
		require.Len(t, ts, 1)
		// Run the retry task at once, before it is due.
		began := time.Now()
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: ts[0].Queue, TaskID: ts[0].TaskID}))
		require.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond, "it waited for the retry")
		in = b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, in.State)
		require.Equal(t, 2, in.Attempts[statemachine.StepCharge])
	})
}

// Each step's retry policy is written into the record when the order is
// created, and the record's policy is the one the engine follows.
func TestRetryPolicyLivesInTheRecord(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		var calls atomic.Int32
		b := setup(t, r, setupOpts{activities: func(a engine.Activities) engine.Activities {
			a[statemachine.StepCharge] = func(context.Context, *statemachine.Instance) (map[string]string, error) {
				calls.Add(1)
				return nil, &providers.Error{Provider: "payment", Op: "charge", Status: 429}
			}
			return a
		}})
		b.start(t, "o1")
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		in := b.load(t, "o1")
		d, _ := b.reg.Default(statemachine.OrderWorkflow)
		charging, _ := d.State(statemachine.OrderCharging)
		require.Equal(t, charging.Retry.WithDefaults(), in.Policies[statemachine.StepCharge], "the record holds the policy")
		require.Contains(t, in.Policies, statemachine.StepReserve)

		// Tighten the policy in the record: the engine follows it.
		var f statemachine.Fields
		tight := in.Policies
		tight[statemachine.StepCharge] = statemachine.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Coefficient: 1, MaxAttempts: 2}
		f.Policies(tight)
		_, err := b.store.Apply(context.Background(), statemachine.Change{ID: "o1", ExpectState: in.State, ExpectRev: in.Rev,
			Lease: statemachine.LeaseIgnore, KeepLease: true, State: in.State, Status: in.Status, Fields: f})
		require.NoError(t, err)
		b.drain(t)
		require.Equal(t, statemachine.OrderFailed, b.load(t, "o1").State)
		require.EqualValues(t, 2, calls.Load(), "two attempts, as the record's policy says")
	})
}
