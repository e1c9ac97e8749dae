package engine_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The effect-safety suite: provider answers that are not declines must never
// be taken for one, and every way a run can end must leave the order
// consistent. Each test failed on the engine before its fix.

// providerOf names the provider a step calls.
func providerOf(step string) string {
	switch step {
	case statemachine.StepReserve, statemachine.StepRelease:
		return providers.ProviderInventory
	case statemachine.StepShip:
		return providers.ProviderShipping
	}
	return providers.ProviderPayment
}

// answerFirst makes the first n calls of step answer with err; with apply,
// each applies the effect first (the provider did the work, the answer says
// otherwise).
func answerFirst(step string, n int32, apply bool, err func() error) func(engine.Activities) engine.Activities {
	return func(a engine.Activities) engine.Activities {
		act := a[step]
		var calls atomic.Int32
		a[step] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
			if calls.Add(1) > n {
				return act(ctx, in)
			}
			if apply {
				if _, err := act(ctx, in); err != nil {
					return nil, err
				}
			}
			return nil, err()
		}
		return a
	}
}

func inProgress(step string) func() error {
	return func() error {
		return &providers.Error{Provider: providerOf(step), Op: step, Status: http.StatusConflict,
			Code: "idempotency_key_in_use", RetryAfter: time.Millisecond}
	}
}

func stray(step string, status int) func() error {
	return func() error {
		return &providers.Error{Provider: providerOf(step), Op: step, Status: status, Code: "unauthorized"}
	}
}

// requireCompletedOnce checks that an order completed with each forward
// effect applied once and nothing undone.
func requireCompletedOnce(t *testing.T, b *testBundle, id string) *statemachine.Instance {
	t.Helper()
	in := b.load(t, id)
	require.Equal(t, statemachine.OrderCompleted, in.State, "last error %q", in.LastError)
	for op, n := range map[string]int{providers.OpReserve: 1, providers.OpCharge: 1, providers.OpShip: 1, providers.OpRefund: 0, providers.OpRelease: 0} {
		require.Equal(t, n, b.prov.Applied(op), op)
	}
	require.Empty(t, in.LeaseToken)
	return in
}

var forwardSteps = []string{statemachine.StepReserve, statemachine.StepCharge, statemachine.StepShip}

// A 409 idempotency_key_in_use says the provider is still working on the
// key (its first attempt timed out on our side). It is retried under the
// same key; before the fix it ended the order failed with the effect kept
// (or, for a shipment, refunded an order that shipped).
func TestInProgressAnswerIsNotADecline(t *testing.T) {
	t.Parallel()
	for _, step := range forwardSteps {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
				b := setup(t, r, setupOpts{activities: answerFirst(step, 2, true, inProgress(step))})
				b.start(t, "o1")
				b.advance(t, "o1")
				in := requireCompletedOnce(t, b, "o1")
				require.Equal(t, 3, in.Attempts[step], "retried under the same key until the answer came")
			})
		})
	}
}

// A stray 401 (a rotated credential) or a gateway's 404 says nothing about
// the effect: it is retried, logged and counted, never taken for a decline.
func TestStrayAnswerIsNotADecline(t *testing.T) {
	t.Parallel()
	for _, step := range forwardSteps {
		for _, status := range []int{http.StatusUnauthorized, http.StatusNotFound} {
			t.Run(step+"/"+http.StatusText(status), func(t *testing.T) {
				t.Parallel()
				redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
					reg := prometheus.NewRegistry()
					m := engine.NewMetrics(reg)
					b := setup(t, r, setupOpts{metrics: m, activities: answerFirst(step, 2, false, stray(step, status))})
					b.start(t, "o1")
					b.advance(t, "o1")
					requireCompletedOnce(t, b, "o1")
					require.Equal(t, 2.0, testutil.ToFloat64(m.ProviderUnexpected.WithLabelValues(providerOf(step), strconv.Itoa(status))),
						"each stray answer is counted")
				})
			})
		}
	}
}

// rudePayment answers the first charges with a lost answer after applying
// them, then a number of stray 401s without applying anything.
type rudePayment struct {
	providers.Payment
	mu              sync.Mutex
	lost, strays    int
	charges, refund int
}

func (p *rudePayment) Charge(ctx context.Context, r providers.ChargeRequest) (string, error) {
	p.mu.Lock()
	p.charges++
	n := p.charges
	p.mu.Unlock()
	switch {
	case n <= p.lost:
		if _, err := p.Payment.Charge(ctx, r); err != nil {
			return "", err
		}
		return "", &providers.Error{Provider: providers.ProviderPayment, Op: providers.OpCharge, Status: http.StatusInternalServerError}
	case n <= p.lost+p.strays:
		return "", &providers.Error{Provider: providers.ProviderPayment, Op: providers.OpCharge, Status: http.StatusUnauthorized, Code: "unauthorized"}
	}
	return p.Payment.Charge(ctx, r)
}

// During compensation, the call that settles a charge in doubt (repeating
// it under its key) can get a 401. Only a success or a decline settles it:
// before the fix the 401 counted as a decline and the refund was skipped,
// leaving the customer charged for a failed order.
func TestStrayAnswerWhileSettlingDoesNotSkipTheRefund(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		pay := &rudePayment{Payment: b.prov, lost: 6, strays: 2}
		set := b.prov.Set()
		set.Payment = pay
		acts := orders.Activities(set)
		b.eng = newEngine(t, b, acts)
		b.start(t, "o1")
		b.advance(t, "o1")
		in := b.load(t, "o1")
		require.Equal(t, statemachine.OrderFailed, in.State)
		require.Equal(t, []string{"start", "reserved", "charge_unsettled", "refunded", "released"}, transitions(t, b.store, "o1"))
		require.Equal(t, 1, b.prov.Applied(providers.OpCharge))
		require.Equal(t, 1, b.prov.Applied(providers.OpRefund), "the charge was settled and refunded")
		require.Equal(t, 1, b.prov.Applied(providers.OpRelease))
	})
}

// newEngine builds another engine over the bundle's store and queue.
func newEngine(t *testing.T, b *testBundle, acts engine.Activities) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Config{Logger: b.eng.Config().Logger, Lease: b.eng.Config().Lease}, b.store, b.reg, acts, b.queue, nil)
	require.NoError(t, err)
	return eng
}

// A retry planned for a write that lost the compare-and-set belongs to a
// state the order already left. Before the fix the run queued that retry
// anyway and kept the lease, stalling the order for a lease.
func TestRetryPlanOfALostWriteIsDropped(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		running, release := make(chan struct{}), make(chan struct{})
		b := setup(t, r, setupOpts{activities: func(a engine.Activities) engine.Activities {
			reserve := a[statemachine.StepReserve]
			var calls atomic.Int32
			a[statemachine.StepReserve] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
				if calls.Add(1) > 1 {
					return reserve(ctx, in)
				}
				close(running)
				<-release
				return nil, &providers.Error{Provider: providers.ProviderInventory, Op: providers.OpReserve, Status: http.StatusServiceUnavailable}
			}
			return a
		}})
		b.start(t, "o1")
		done := b.advanceAsync("o1")
		<-running
		// Meanwhile another writer moves the order on and lets the lease go
		// (as a worker that took over an expired lease would).
		in := b.load(t, "o1")
		var f statemachine.Fields
		f.Result(orders.ResultReservationID, "res-other")
		_, err := b.store.Apply(context.Background(), statemachine.Change{ID: "o1", ExpectState: in.State, ExpectRev: in.Rev,
			Lease: statemachine.LeaseIgnore, State: statemachine.OrderCharging, Status: statemachine.StatusRunning, Fields: f,
			Event: &statemachine.Event{Type: statemachine.EventTransition, Event: "reserved", From: in.State, To: statemachine.OrderCharging}})
		require.NoError(t, err)
		close(release)
		require.NoError(t, <-done)

		in = b.load(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, in.State, "the run carried on from where the order really was")
		require.Empty(t, in.LeaseToken, "no lease is kept")
		require.Empty(t, b.queue.take(), "no retry of the state the order left was queued")
		require.Equal(t, 1, b.prov.Applied(providers.OpCharge))
	})
}

// hookQueue runs a hook after every enqueue.
type hookQueue struct {
	memQueue
	after func(engine.Task)
}

func (q *hookQueue) Enqueue(ctx context.Context, t engine.Task) error {
	if err := q.memQueue.Enqueue(ctx, t); err != nil {
		return err
	}
	if q.after != nil {
		q.after(t)
	}
	return nil
}

// A handoff writes the due entry before it queues the task. Before the fix
// it wrote it after, through a batch, and could overwrite the lease end of
// the worker that had already taken the task, so a crash of that worker was
// found only after the pickup grace (60 s) instead of one lease.
func TestHandoffWritesTheDueEntryBeforeTheTask(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		d := statemachine.OrderV1()
		for i := range d.States {
			if d.States[i].Step == statemachine.StepCharge {
				d.States[i].Queue = "payments"
			}
		}
		b := setup(t, r, setupOpts{registry: statemachine.NewRegistry().MustRegister(d)})
		q := &hookQueue{}
		var leaseEnd time.Time
		q.after = func(task engine.Task) {
			// Another worker takes the task at once, and dies holding it.
			leaseEnd = time.Now().Add(time.Second)
			_, err := b.store.Claim(context.Background(), task.InstanceID, "fast-worker", leaseEnd)
			require.NoError(t, err)
		}
		eng, err := engine.New(engine.Config{Logger: b.eng.Config().Logger, Queues: notPayments},
			b.store, b.reg, orders.Activities(b.prov.Set()), q, nil)
		require.NoError(t, err)
		b.start(t, "o1")
		require.NoError(t, eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, statemachine.OrderCharging, b.load(t, "o1").State)
		b.store.FlushDue()
		due, err := b.store.DueBefore(context.Background(), time.Now().Add(time.Hour), 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		require.Equal(t, leaseEnd.UnixMilli(), due[0].At, "the due entry is the taker's lease end, not the pickup grace")
		task := q.take()
		require.Len(t, task, 1)
		require.Contains(t, task[0].TaskID, ":h:", "a handoff's task ID carries the run's token")
	})
}

// Leases are judged by the Redis clock. Before the fix each process judged
// them by its own, so a worker whose clock ran ahead took a lease another
// worker still held, and its reaper re-drove live orders.
func TestClockSkewCannotStealALease(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{cfg: engine.Config{Lease: 5 * time.Second}})
		b.start(t, "o1")
		_, err := b.store.Claim(context.Background(), "o1", "honest", time.Now().Add(5*time.Second))
		require.NoError(t, err)

		// A worker on a host whose clock runs an hour ahead.
		ahead := func() time.Time { return time.Now().Add(time.Hour) }
		skewed := statemachine.NewStore(r.Client(t), statemachine.StoreConfig{Clock: ahead})
		t.Cleanup(skewed.Close)
		_, err = skewed.Claim(context.Background(), "o1", "skewed", ahead().Add(5*time.Second))
		require.ErrorIs(t, err, statemachine.ErrLeased, "the lease has 5s left by the Redis clock")

		eng, err := engine.New(engine.Config{Logger: b.eng.Config().Logger, Lease: 5 * time.Second}, skewed, b.reg,
			orders.Activities(b.prov.Set()), b.queue, nil)
		require.NoError(t, err)
		require.NoError(t, eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, statemachine.OrderPending, b.load(t, "o1").State, "the skewed worker left the order alone")
		require.Zero(t, b.prov.Applied(providers.OpReserve))
		n, err := eng.Reap(context.Background())
		require.NoError(t, err)
		require.Zero(t, n, "its reaper re-drives nothing")
		require.Equal(t, "honest", b.load(t, "o1").LeaseToken)
	})
}

// A compensation refused forever is parked after its attempts: it stops
// retrying and growing its history, shows in the dead-letter index and the
// metric, and waits for an operator to retry it or to resolve it by hand.
// Before the fix it retried without end.
func TestCompensationRefusedForeverIsDeadLettered(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		var refuse atomic.Bool
		refuse.Store(true)
		reg := prometheus.NewRegistry()
		m := engine.NewMetrics(reg)
		b := setup(t, r, setupOpts{metrics: m, activities: func(a engine.Activities) engine.Activities {
			release := a[statemachine.StepRelease]
			a[statemachine.StepRelease] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
				if refuse.Load() {
					return nil, &providers.Error{Provider: providers.ProviderInventory, Op: providers.OpRelease, Status: http.StatusForbidden, Code: "forbidden"}
				}
				return release(ctx, in)
			}
			a[statemachine.StepCharge] = func(context.Context, *statemachine.Instance) (map[string]string, error) {
				return nil, &providers.Error{Provider: providers.ProviderPayment, Op: providers.OpCharge, Status: http.StatusPaymentRequired, Code: providers.CodeCardDeclined}
			}
			return a
		}})
		ctx := context.Background()
		for _, id := range []string{"o1", "o2"} {
			b.start(t, id)
			b.advance(t, id) // drains every retry until none is queued
			in := b.load(t, id)
			require.Equal(t, statemachine.OrderReleasing, in.State)
			require.Equal(t, statemachine.StepRelease, in.DeadLetter)
			require.Equal(t, statemachine.StatusRunning, in.Status)
			require.Empty(t, in.LeaseToken)
			require.Equal(t, 50, in.Attempts[statemachine.StepRelease], "the policy's attempts, then parked")
			evs, err := b.store.History(ctx, id)
			require.NoError(t, err)
			require.Less(t, len(evs), 60, "the history stops growing")
			require.Equal(t, statemachine.EventDeadLettered, evs[len(evs)-1].Type)
		}
		n, err := b.store.DeadLetters(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		require.Equal(t, 2.0, testutil.ToFloat64(m.DeadLetters.WithLabelValues(statemachine.OrderWorkflow, statemachine.StepRelease)))

		// A parked order is left alone by tasks and the reaper.
		require.NoError(t, b.eng.Advance(ctx, "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
		require.Equal(t, 50, b.load(t, "o1").Attempts[statemachine.StepRelease])

		// The provider is fixed; an operator retries o1 and resolves o2.
		refuse.Store(false)
		in, err := b.eng.RetryDeadLetter(ctx, "o1", "inventory credentials rotated")
		require.NoError(t, err)
		require.Empty(t, in.DeadLetter)
		b.drain(t)
		in = b.load(t, "o1")
		require.Equal(t, statemachine.OrderFailed, in.State)
		require.Equal(t, 1, b.prov.Applied(providers.OpRelease))

		in, err = b.eng.ResolveDeadLetter(ctx, "o2", "released by hand in the warehouse system")
		require.NoError(t, err)
		require.Equal(t, statemachine.OrderFailed, in.State)
		require.Equal(t, "operator", in.Results["resolved_release"])
		evs, err := b.store.History(ctx, "o2")
		require.NoError(t, err)
		require.Contains(t, string(evs[len(evs)-1].Detail), "released by hand")

		n, err = b.store.DeadLetters(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		_, err = b.eng.RetryDeadLetter(ctx, "o1", "again")
		require.ErrorIs(t, err, engine.ErrNotDeadLettered)
		_, err = b.eng.ResolveDeadLetter(ctx, "o2", "again")
		require.ErrorIs(t, err, engine.ErrNotDeadLettered)
	})
}

// A finished order has no due entry, even after its late duplicate task
// (the asynq task of an order the wake path already finished) runs. Before
// the fix the duplicate's claim wrote the entry back, and at a steady load
// finished orders piled up in the due index faster than the reapers took
// them out.
func TestFinishedOrderLeavesTheDueIndex(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, setupOpts{})
		b.start(t, "o1")
		b.advance(t, "o1")
		require.Equal(t, statemachine.OrderCompleted, b.load(t, "o1").State)
		// Its first task comes late and finds it finished.
		require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue, TaskID: engine.InitialTaskID("o1")}))
		b.store.FlushDue()
		n, _, err := b.store.DueStats(context.Background())
		require.NoError(t, err)
		require.Zero(t, n, "no due entry for a finished order")
	})
}
