package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// commitTimeout bounds a write made outside a task's context (releasing a
// lease). Commits run on a context detached from the task's, so an effect
// that happened is recorded even when the task is being cancelled; the
// store bounds each round trip itself.
const commitTimeout = 10 * time.Second

// run is one Advance call working on one instance.
type run struct {
	e       *Engine
	id      string
	token   string
	queue   string
	log     *slog.Logger
	started time.Time

	inst *statemachine.Instance
	def  *statemachine.Definition
	hint *Hint
	// acquire: the next write takes the lease (the hinted first write).
	acquire bool
	// holding: this run holds the lease.
	holding bool
	// begun: the current step's attempt was begun by this run.
	begun bool
	// taskDriven: an asynq task asked for this run (not the fast path).
	taskDriven bool
	// admission is the flow control's admission of the current attempt.
	admission Admission
}

// Advance moves an instance on as far as it can. It returns nil when the
// instance needs nothing more from this task (it finished, waits, was handed
// off, or is owned by another worker) and an error when the task should be
// retried (Redis unreachable, a version this worker lacks, ErrNotReady).
func (e *Engine) Advance(ctx context.Context, id string, opt AdvanceOptions) error {
	e.inFlight.Add(1)
	defer func() {
		e.inFlight.Add(-1)
		e.freed()
	}()
	return e.advance(ctx, id, opt, true)
}

// advance runs one advance; taskDriven says whether an asynq task (rather
// than the wake fast path) asked for it.
func (e *Engine) advance(ctx context.Context, id string, opt AdvanceOptions, taskDriven bool) error {
	if e.activities == nil {
		return errors.New("this engine has no activities and cannot advance instances")
	}
	// Lease ends and due times are written on the Redis clock.
	e.store.EnsureClock(ctx)
	r := &run{
		e: e, id: id, taskDriven: taskDriven, token: e.newToken(), queue: opt.Queue, started: e.store.Now(),
		log: e.log.With("order_id", id, "task_id", opt.TaskID),
	}
	if r.queue == "" {
		r.queue = statemachine.DefaultQueue
	}
	r.hint = opt.Hint
	if h := opt.Hint; h != nil && h.Rev > 0 && h.State != "" && h.Workflow != "" {
		// A first task's instance holds its definition's policies, as
		// written at creation (the version is pinned).
		r.inst = &statemachine.Instance{
			ID: id, Workflow: h.Workflow, Version: h.Version, State: h.State, Status: statemachine.StatusRunning,
			Rev: h.Rev, Input: h.Input, Priority: cmp.Or(h.Priority, statemachine.PriorityNormal), Fingerprint: h.Fingerprint,
			Signals: map[string]bool{}, Attempts: map[string]int{}, Declined: map[string]bool{}, Policies: map[string]statemachine.RetryPolicy{}, Results: map[string]string{},
		}
		r.acquire = true
	} else if err := r.claim(ctx); err != nil || r.inst == nil {
		return err
	}
	ctx, span := r.startAdvance(ctx, opt)
	err := r.loop(ctx)
	// An admission still held here is one no attempt reported on: give it
	// back, or its slots and in-flight mark would be renewed for as long as
	// the worker lives.
	r.settleAdmission(ctx, ErrNotAttempted)
	// Whatever ended the run, it gives the lease up: another task, or the
	// reaper, takes over at once rather than after the lease runs out.
	r.release()
	endSpan(span, err)
	return err
}

// claim takes the lease. It leaves r.inst nil, with a nil error, when there
// is nothing to do.
func (r *run) claim(ctx context.Context) error {
	for wait := 2 * time.Millisecond; ; wait *= 2 {
		until := r.e.store.Now().Add(r.e.cfg.Lease)
		inst, err := r.e.store.Claim(ctx, r.id, r.token, until)
		switch {
		case err == nil:
			r.inst, r.acquire, r.holding, r.begun = inst, false, true, false
			// Redis judges the lease by its own clock; this run keeps its
			// view on the local clock, which is what it renews by.
			r.inst.LeaseUntil = until
			return nil
		case errors.Is(err, statemachine.ErrNotFound) && r.hint != nil && r.e.store.Now().Sub(r.hint.At) < r.e.cfg.FirstTaskGrace:
			// A first task that overtook the API, which writes the instance
			// just after queueing it: wait a little, then let asynq retry.
			if wait > 64*time.Millisecond {
				r.inst = nil
				return ErrNotReady
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		case errors.Is(err, statemachine.ErrNotFound), errors.Is(err, statemachine.ErrTerminal), errors.Is(err, statemachine.ErrLeased):
			r.log.Debug("nothing to advance", "reason", err)
			r.inst = nil
			return nil
		default:
			r.inst = nil
			return err
		}
	}
}

func (r *run) loop(ctx context.Context) error {
	for {
		if r.def == nil || r.def.Name != r.inst.Workflow || r.def.Version != r.inst.Version {
			def, err := r.e.registry.Get(r.inst.Workflow, r.inst.Version)
			if err != nil {
				r.log.Error("WORKFLOW VERSION MISSING: this worker cannot run an instance in flight; deploy a worker that has it",
					"workflow", r.inst.Workflow, "version", r.inst.Version)
				return fmt.Errorf("advancing %s: %w", r.id, err)
			}
			r.def = def
		}
		st, ok := r.def.State(r.inst.State)
		if !ok {
			r.log.Error("instance is in a state its definition lacks", "state", r.inst.State, "definition", r.def.Key())
			return fmt.Errorf("advancing %s: unknown state %q in %s", r.id, r.inst.State, r.def.Key())
		}
		if st.Terminal() {
			return nil
		}
		if r.inst.DeadLetter != "" {
			// Parked for an operator (see deadletter.go).
			return nil
		}
		if r.inst.Paused && !r.begun {
			// No step starts while paused, and signals received meanwhile
			// take effect on resume, which queues a task.
			return nil
		}
		if sig, ev := pendingSignal(st, r.inst); ev != "" {
			if err := r.commitLoop(ctx, st, func() decision {
				return r.signalChange(st, sig, ev, outcome{})
			}); err != nil {
				return err
			}
			if r.inst == nil {
				return nil
			}
			continue
		}
		if st.Step == "" {
			if st.Waiting() {
				// A signal moves it on, or its deadline.
				if done, err := r.waitOrTimeOut(ctx, st); err != nil || done {
					return err
				}
				if r.inst == nil {
					return nil
				}
				continue
			}
			if err := r.commitLoop(ctx, st, func() decision {
				if r.inst.Paused {
					return decision{skip: true} // paused meanwhile: the loop stops
				}
				return r.moveChange(st, st.OnSuccess, nil, &statemachine.Event{})
			}); err != nil {
				return err
			}
			if r.inst == nil {
				return nil
			}
			continue
		}
		if !r.begun {
			// The step boundary: an attempt this run already began (the
			// write that entered the state began it) runs to its end, even
			// when the worker is stopping; otherwise the order is handed
			// off here.
			if q := r.inst.QueueOf(r.def, st); q != r.queue {
				if !r.e.continuesInline(q) {
					return r.handoff(ctx, q, "queue")
				}
				r.queue = q
			}
			if r.e.stopping.Load() {
				return r.handoff(ctx, r.queue, "stopping")
			}
			if r.e.store.Now().Sub(r.started) > r.e.cfg.TimeSlice {
				return r.handoff(ctx, r.queue, "time_slice")
			}
			if r.e.gated(st) {
				// A retry due soon is waited for here, so that admission
				// is asked right before the attempt begins (a later one is
				// handed off by beginAttempt, and asks when it is due).
				if wait := r.inst.NextAt.Sub(r.e.store.Now()); wait > 0 && wait <= maxInlineWait {
					if err := r.waitDue(ctx, wait); err != nil {
						return err
					}
				}
				if r.inst.NextAt.Sub(r.e.store.Now()) <= 0 {
					if done, err := r.admit(ctx, st); err != nil || done {
						return err
					}
				}
			}
			done, err := r.beginAttempt(ctx, st)
			if err != nil || done || r.inst == nil || !r.begun || r.inst.State != st.Name {
				// The admitted attempt did not begin here.
				r.settleAdmission(ctx, ErrNotAttempted)
			}
			if err != nil || done {
				return err
			}
			if r.inst == nil {
				return nil
			}
			if !r.begun || r.inst.State != st.Name {
				continue
			}
		}
		// An attempt begun by the write that entered the state runs here,
		// under the step's own queue (see continuesInline).
		r.queue = r.inst.QueueOf(r.def, st)
		if st.Parallel() {
			done, err := r.runFanout(ctx, st)
			if err != nil || done || r.inst == nil {
				return err
			}
			continue
		}
		out := r.runStep(ctx, st)
		if out.abandoned {
			r.settleAdmission(ctx, ErrNotAttempted)
			return r.handoff(ctx, r.queue, "stopping")
		}
		r.settleAdmission(ctx, out.err)
		var d decision
		applied, err := r.commitLoopApplied(ctx, st, func() decision {
			d = r.decide(st, out)
			return d
		})
		if err != nil {
			return err
		}
		if r.inst == nil {
			return nil
		}
		// A retry planned for a write that lost is dropped: the instance
		// moved on, and the loop carries on from where it really is.
		if applied && d.plan != nil {
			return r.scheduleRetry(ctx, st, d.plan)
		}
		if applied && d.parked {
			return r.parked(ctx, st)
		}
	}
}

// beginAttempt records that a new attempt of the current step starts, after
// a claim. It reports done when the instance must wait instead.
func (r *run) beginAttempt(ctx context.Context, st *statemachine.State) (done bool, err error) {
	if wait := r.inst.NextAt.Sub(r.e.store.Now()); wait > 0 {
		// Woken before the retry is due. asynq schedules in whole seconds,
		// so its retry tasks may come up to a second early: wait here for
		// short gaps, holding the lease; hand longer ones to a new task.
		if wait > maxInlineWait {
			t := Task{InstanceID: r.id, Queue: r.queue, Delay: wait,
				TaskID: fmt.Sprintf("adv:%s:%d:due:%d", r.id, r.inst.Rev, r.inst.NextAt.UnixMilli())}
			return true, r.handoffTask(ctx, t, r.inst.NextAt.Add(r.e.cfg.RetryGrace), "early")
		}
		if _, err := r.e.store.Renew(ctx, r.id, r.token, r.e.store.Now().Add(wait+r.e.cfg.Lease)); err != nil {
			return true, err
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(wait):
		}
	}
	if st.Parallel() {
		return false, r.beginFanout(ctx, st)
	}
	attempt := r.inst.Attempts[st.Step] + 1
	policy := r.inst.PolicyOf(st.Step, st.Retry)
	if attempt > policy.MaxAttempts {
		// Attempts were used up by crashes mid-step.
		var d decision
		applied, err := r.commitLoopApplied(ctx, st, func() decision {
			d = r.decide(st, outcome{err: errAttemptsUsed, attempt: attempt - 1})
			return d
		})
		if err == nil && applied && d.parked {
			return true, r.parked(ctx, st)
		}
		return false, err
	}
	return false, r.commitLoop(ctx, st, func() decision {
		if r.inst.Paused {
			return decision{skip: true} // paused meanwhile: no attempt begins
		}
		var f statemachine.Fields
		f.Attempt(st.Step, r.inst.Attempts[st.Step]+1)
		if !r.inst.NextAt.IsZero() {
			f.NextAt(time.Time{})
		}
		// The provider is called after this write: it must be durable
		// first, or a crash could forget that the call may have happened.
		return decision{change: statemachine.Change{
			State: st.Name, Status: st.Status, Fields: f,
			LeaseUntil: r.e.store.Now().Add(r.leaseFor(st)), Durable: true,
		}, begins: true}
	})
}

// waitDue waits in place, holding the lease, for a retry due after wait.
func (r *run) waitDue(ctx context.Context, wait time.Duration) error {
	if _, err := r.e.store.Renew(ctx, r.id, r.token, r.e.store.Now().Add(wait+r.e.cfg.Lease)); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

var errAttemptsUsed = errors.New("attempts used up by interrupted runs")

// maxInlineWait is the longest a run waits in place for a retry that is not
// due yet, rather than handing off.
const maxInlineWait = 2 * time.Second

// commitLoop builds a change with build and applies it. When the compare
// fails it reloads the instance; if the instance is still in st it builds the
// change again (a signal may have arrived), otherwise it returns with r.inst
// set to the reloaded instance (or nil when another worker owns it).
func (r *run) commitLoop(ctx context.Context, st *statemachine.State, build func() decision) error {
	_, err := r.commitLoopApplied(ctx, st, build)
	return err
}

// commitLoopApplied is commitLoop, also reporting whether the last change
// built was applied (false when the instance left st meanwhile).
func (r *run) commitLoopApplied(ctx context.Context, st *statemachine.State, build func() decision) (bool, error) {
	for tries := 0; ; tries++ {
		d := build()
		if d.skip {
			return false, nil
		}
		c := d.change
		c.ID, c.ExpectState, c.ExpectRev, c.Token = r.id, r.inst.State, r.inst.Rev, r.token
		c.Lease = statemachine.LeaseHold
		if r.acquire {
			// The hinted first write: the run knows the instance only from
			// its task, so the record must be the one the task was for.
			c.Lease, c.ExpectFingerprint = statemachine.LeaseAcquire, r.inst.Fingerprint
		}
		a, err := r.e.store.Apply(context.WithoutCancel(ctx), c)
		if err == nil {
			r.applied(c, a)
			r.begun = d.begins
			return true, nil
		}
		if !errors.Is(err, statemachine.ErrStale) {
			if errors.Is(err, statemachine.ErrNotDurable) {
				// The write was made but is not durable: act on nothing,
				// and let the task be retried from the record.
				r.log.Warn("write not durable; the step waits", "err", err)
			}
			return false, err
		}
		r.e.metrics.stale()
		if tries >= 10 {
			return false, fmt.Errorf("advancing %s: too many lost writes: %w", r.id, err)
		}
		before, wasBegun := r.inst, r.begun
		if err := r.claim(ctx); err != nil || r.inst == nil {
			return false, err
		}
		if r.inst.State != st.Name || r.inst.Workflow != r.def.Name || r.inst.Version != r.def.Version {
			// It moved on, or was migrated to another version (whose state
			// of the same name may lead elsewhere): the loop starts over
			// from the record and its definition.
			return false, nil
		}
		// Still our attempt only if nobody began another meanwhile.
		r.begun = wasBegun && st.Step != "" && r.inst.Attempts[st.Step] == before.Attempts[st.Step]
	}
}

// applied updates the in-memory instance after a successful write.
func (r *run) applied(c statemachine.Change, a statemachine.Applied) {
	from := r.inst.State
	if a.Incarnation > 0 {
		r.inst.Incarnation = a.Incarnation
	}
	r.inst.ApplyFields(c.Fields)
	r.inst.State, r.inst.Status, r.inst.Rev = c.State, c.Status, a.Rev
	r.acquire = false
	if !c.KeepLease {
		r.holding = !c.LeaseUntil.IsZero()
		if r.holding {
			r.inst.LeaseToken, r.inst.LeaseUntil = r.token, c.LeaseUntil
		} else {
			r.inst.LeaseToken, r.inst.LeaseUntil = "", time.Time{}
		}
	}
	if c.State != from && c.Event != nil {
		r.e.metrics.transition(r.inst.Workflow, from, c.State, c.Event.Event)
		r.log.Debug("transition", "from", from, "to", c.State, "event", c.Event.Event)
	}
	if c.Status.Terminal() {
		r.e.metrics.finished(r.inst.Workflow, string(c.Status))
		r.e.metrics.instanceDone(r.inst.Workflow, string(c.Status), r.age())
		r.log.Debug("instance finished", "status", c.Status, "state", c.State)
		if r.e.cfg.OnFinish != nil {
			r.e.cfg.OnFinish(r.inst)
		}
	}
}

// release gives up the lease, on a detached context.
func (r *run) release() {
	if !r.holding {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := r.e.store.Release(ctx, r.id, r.token); err != nil {
		r.log.Warn("releasing lease", "err", err)
	}
	r.holding = false
}

// handoff passes the instance to a new task on queue. The task's ID carries
// this run's token, so it never collides with the task running now.
func (r *run) handoff(ctx context.Context, queue, why string) error {
	t := Task{InstanceID: r.id, Queue: queue, TaskID: fmt.Sprintf("adv:%s:%d:h:%s", r.id, r.inst.Rev, r.token)}
	return r.handoffTask(ctx, t, r.e.store.Now().Add(r.e.cfg.PickupGrace), why)
}

// handoffTask releases the lease and writes the due entry in one round
// trip, then queues t. The due entry comes first: the worker that takes t
// writes its lease end after it, so this later deadline cannot overwrite a
// fresher lease end and delay a resume.
func (r *run) handoffTask(ctx context.Context, t Task, due time.Time, why string) error {
	ctx = context.WithoutCancel(ctx)
	wakeQueue := ""
	if t.Delay == 0 {
		// Announce it, so that a worker with spare capacity takes it at
		// once (see wake.go).
		wakeQueue = t.Queue
	}
	if r.holding {
		if err := r.e.store.HandOff(ctx, r.id, r.token, due, wakeQueue); err != nil {
			return fmt.Errorf("handing off %s: %w", r.id, err)
		}
		r.holding = false
	} else if err := r.e.store.ScheduleDue(ctx, r.id, due, wakeQueue); err != nil {
		return fmt.Errorf("handing off %s: %w", r.id, err)
	}
	if err := r.e.queue.Enqueue(ctx, t); err != nil {
		return fmt.Errorf("handing off %s: %w", r.id, err)
	}
	r.log.Debug("handed off", "queue", t.Queue, "why", why)
	return nil
}

// scheduleRetry queues the task that runs the next attempt after backoff,
// once the retry was recorded (the write released the lease).
func (r *run) scheduleRetry(ctx context.Context, st *statemachine.State, p *retryPlan) error {
	ctx = context.WithoutCancel(ctx)
	t := Task{InstanceID: r.id, Queue: r.inst.QueueOf(r.def, st), TaskID: p.taskID, Delay: p.delay}
	if err := r.e.store.ScheduleDue(ctx, r.id, r.e.store.Now().Add(p.delay+r.e.cfg.RetryGrace), ""); err != nil {
		// The entry still says when the lease ran out: the reaper looks
		// then, early but safe.
		r.log.Warn("writing the retry's due entry", "err", err)
	}
	if err := r.e.queue.Enqueue(ctx, t); err != nil {
		// The due index brings the instance back; no need to fail the task.
		r.log.Warn("queueing retry; the reaper will re-drive it", "err", err)
	}
	return nil
}
