package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// outcome is what one attempt of a step produced.
type outcome struct {
	results map[string]string
	err     error
	attempt int
	// at is when the attempt ended.
	at time.Time
	// abandoned is set when a long step's activity was cancelled because
	// the worker is stopping: the attempt is handed off, not judged.
	abandoned bool
}

// retryPlan is a retry the decision scheduled.
type retryPlan struct {
	delay  time.Duration
	taskID string
}

// decision is a change to commit and what follows from it.
type decision struct {
	change statemachine.Change
	// plan is set when the step must be retried later.
	plan *retryPlan
	// begins is set when the change begins an attempt of the next step.
	begins bool
	// parked is set when the change dead-letters the step: it stops
	// retrying until an operator retries or resolves it.
	parked bool
	// skip is set when nothing is to be written after all (the instance
	// was paused while the change was being built); the loop then finds
	// out why from the reloaded instance.
	skip bool
}

// runStep runs the current step's activity once, renewing the lease while it
// runs.
func (r *run) runStep(ctx context.Context, st *statemachine.State) outcome {
	start := time.Now()
	actx, span := r.startStep(ctx, st.Step, "", r.inst.Attempts[st.Step])
	actx, cancel := context.WithCancel(actx)
	stopRenew := func() {}
	var stopping atomic.Bool
	if st.Heartbeat > 0 {
		// A long step: only its heartbeats renew the lease, and a
		// stopping worker abandons it to another (see Engine.Stop).
		actx, stopRenew = r.heartbeats(actx, st.Step, r.leaseFor(st), cancel)
		stopWatch := context.AfterFunc(r.e.stopped, func() {
			stopping.Store(true)
			cancel()
		})
		defer stopWatch()
	} else {
		stopRenew = r.keepLease(actx, cancel)
	}
	res, err := callActivity(actx, r.e.activities[st.Step], r.inst)
	stopRenew()
	cancel()
	endSpan(span, err)
	if err != nil && stopping.Load() {
		r.log.Info("long step abandoned: the worker is stopping; another worker takes it over from its checkpoint", "step", st.Step)
		return outcome{err: err, attempt: r.inst.Attempts[st.Step], abandoned: true}
	}
	verdict := "success"
	if err != nil {
		verdict = "error"
		r.log.Info("step failed", "step", st.Step, "attempt", r.inst.Attempts[st.Step], "err", err)
	}
	r.e.metrics.step(r.inst.Workflow, st.Step, verdict, time.Since(start))
	return outcome{results: res, err: err, attempt: r.inst.Attempts[st.Step]}
}

// keepLease renews the lease every third of its length while a step runs,
// from a timer that only fires for a slow step. If the lease is lost it
// cancels the step. The returned func stops it.
func (r *run) keepLease(ctx context.Context, cancel context.CancelFunc) (stop func()) {
	every := r.e.cfg.Lease / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		until := r.e.store.Now().Add(r.e.cfg.Lease)
		ok, err := r.e.store.Renew(ctx, r.id, r.token, until)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped:
			return
		case err != nil:
			r.log.Warn("renewing lease", "err", err)
		case !ok:
			r.log.Warn("lease lost during a step; abandoning the attempt")
			cancel()
			return
		default:
			r.inst.LeaseUntil = until
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// pendingSignal returns a signal the instance received that its current
// state acts on, and the event it fires.
func pendingSignal(st *statemachine.State, in *statemachine.Instance) (signal, event string) {
	for sig, on := range in.Signals {
		if !on {
			continue
		}
		if ev := st.OnSignal[sig]; ev != "" {
			return sig, ev
		}
	}
	return "", ""
}

// decide turns a step's outcome into the change to commit, and a retry plan
// when the step must be tried again later.
func (r *run) decide(st *statemachine.State, out outcome) decision {
	if sig, ev := pendingSignal(st, r.inst); ev != "" {
		return r.signalChange(st, sig, ev, out)
	}
	var f statemachine.Fields
	ev := &statemachine.Event{Step: st.Step, Attempt: out.attempt}
	if out.err == nil && st.Outcome != "" && st.OnOutcome[out.results[st.Outcome]] == "" {
		out.err = fmt.Errorf("%s answered %s %q, which %s does not know", st.Step, st.Outcome, out.results[st.Outcome], st.Name)
	}
	if out.err == nil {
		for k, v := range out.results {
			f.Result(k, v)
		}
		name := st.OnSuccess
		if st.Outcome != "" {
			name = st.OnOutcome[out.results[st.Outcome]]
		}
		if r.inst.Reason == statemachine.ReasonCancelled && st.OnSuccessCancelled != "" {
			name = st.OnSuccessCancelled
		}
		return r.moveChange(st, name, f, ev)
	}

	cls := classify(out.err)
	msg := out.err.Error()
	f.Error(msg)
	ev.Error = msg
	if cls.unexpected {
		// Not a decline: the effect may or may not exist. Retry under the
		// same key, and say so loudly.
		r.log.Error("provider answered unexpectedly; retrying with the same key",
			"step", st.Step, "attempt", out.attempt, "provider", cls.provider, "status", cls.status, "err", out.err)
		r.e.metrics.unexpected(cls.provider, cls.status)
	}
	policy := r.inst.PolicyOf(st.Step, st.Retry)
	neverGivesUp := st.Compensation || st.Irreversible
	// A decline fails any forward step, an irreversible one included (it
	// says nothing was applied); running out of attempts fails only a step
	// that may give up.
	if !st.Compensation && (cls.permanent || (!neverGivesUp && policy.Exhausted(out.attempt))) {
		name := st.OnFailure
		if cls.permanent {
			f.Declined(st.Step, true)
		} else if st.OnExhausted != "" {
			name = st.OnExhausted
		}
		if r.inst.Reason == "" {
			f.Reason(statemachine.ReasonFailed)
		}
		return r.moveChange(st, name, f, ev)
	}
	if neverGivesUp && policy.Exhausted(out.attempt) {
		return r.deadLetterChange(st, f, ev, out)
	}

	return r.retryChange(st, f, ev, out)
}

// retryChange records a failed attempt and plans the next one after the
// step's backoff (or the provider's Retry-After).
func (r *run) retryChange(st *statemachine.State, f statemachine.Fields, ev *statemachine.Event, out outcome) decision {
	cls := classify(out.err)
	policy := r.inst.PolicyOf(st.Step, st.Retry)
	delay := policy.Backoff(out.attempt, r.e.cfg.Rand)
	if cls.permanent {
		// A compensation cannot give up; retry it slowly and loudly.
		r.log.Error("compensation step failed permanently; retrying at the maximum interval", "step", st.Step, "err", out.err)
		delay = policy.MaxInterval
	}
	delay = max(delay, cls.retryAfter)
	plan := &retryPlan{delay: delay, taskID: fmt.Sprintf("adv:%s:%d:retry", r.id, r.inst.Rev+1)}
	f.NextAt(r.e.store.Now().Add(delay))
	f.Task(plan.taskID)
	ev.Type = statemachine.EventStepFailed
	ev.Detail, _ = json.Marshal(map[string]any{"retry_in": delay.String(), "ambiguous": cls.ambiguous})
	return decision{change: statemachine.Change{State: st.Name, Status: st.Status, Event: ev, Fields: f}, plan: plan}
}

// signalChange fires the event a signal maps to, recording what the step
// produced so compensation can undo it.
func (r *run) signalChange(st *statemachine.State, sig, event string, out outcome) decision {
	return r.signalChangeWith(st, sig, event, out, nil)
}

// signalChangeWith is signalChange writing f too (a fan-out's branch
// outcomes).
func (r *run) signalChangeWith(st *statemachine.State, sig, event string, out outcome, f statemachine.Fields) decision {
	ev := &statemachine.Event{Step: st.Step, Attempt: out.attempt}
	for k, v := range out.results {
		f.Result(k, v)
	}
	if out.err != nil {
		if classify(out.err).permanent {
			f.Declined(st.Step, true)
		}
		f.Error(out.err.Error())
		ev.Error = out.err.Error()
	}
	f.Signal(sig, false)
	f.Applied(sig)
	if sig == statemachine.SignalCancel {
		f.Reason(statemachine.ReasonCancelled)
	}
	ev.Detail, _ = json.Marshal(map[string]string{"signal": sig})
	return r.moveChange(st, event, f, ev)
}

// moveChange builds the transition firing event from st. When the next state
// runs a step that this run can go on with, the same write begins its first
// attempt, so the loop can run it without another round trip.
func (r *run) moveChange(st *statemachine.State, event string, f statemachine.Fields, ev *statemachine.Event) decision {
	dst, err := r.def.Destination(st.Name, event)
	if err != nil {
		// Definitions are validated at registration, so only a Join can
		// name an event that does not leave the state: a bug of its own.
		r.log.Error("an event that does not leave the state; retrying", "event", event, "state", st.Name, "err", err)
		return r.retryChange(st, f, ev, outcome{err: err, attempt: r.inst.Attempts[st.Step]})
	}
	next, _ := r.def.State(dst)
	ev.Type, ev.Event, ev.From, ev.To = statemachine.EventTransition, event, st.Name, dst
	if !r.inst.NextAt.IsZero() {
		f.NextAt(time.Time{})
	}
	if !r.inst.Deadline.IsZero() {
		f.Deadline(time.Time{})
	}
	now := r.e.store.Now()
	enterFields(r.def, next, r.inst, &f, now)
	c := statemachine.Change{State: dst, Status: next.Status, Event: ev, Fields: f}
	if next.Terminal() {
		return decision{change: c} // the zero LeaseUntil releases the lease
	}
	c.LeaseUntil = now.Add(r.leaseFor(next))
	if r.holding && r.inst.LeaseUntil.Sub(now) > r.e.cfg.Lease/2 && next.Heartbeat == 0 {
		// More than half the lease is left: leave it, and write less.
		c.KeepLease = true
	}
	begins := false
	if next.Step != "" && !next.Parallel() {
		if q := r.inst.QueueOf(r.def, next); (q == r.queue || r.e.continuesInline(q)) && !r.e.stopping.Load() && !r.e.gated(next) && !r.inst.Paused {
			c.Fields.Attempt(next.Step, 1)
			// The next step's provider call follows this write.
			c.Durable = true
			begins = true
		}
	}
	return decision{change: c, begins: begins}
}

// enterFields adds to f what entering state next writes: fresh attempts
// and declines for its step, the deadline of a timed waiting state, the
// branches of a fan-out.
func enterFields(d *statemachine.Definition, next *statemachine.State, in *statemachine.Instance, f *statemachine.Fields, now time.Time) {
	if next.Step != "" {
		if in.Attempts[next.Step] != 0 {
			f.Attempt(next.Step, 0)
		}
		if in.Declined[next.Step] {
			f.Declined(next.Step, false)
		}
	}
	if next.Timeout > 0 {
		f.Deadline(now.Add(next.Timeout))
	}
	if next.Parallel() {
		f.Branches(next.Branches)
	}
}

// leaseFor is the lease a run takes in st: a long step's heartbeat timeout
// when it is longer than the engine's lease.
func (r *run) leaseFor(st *statemachine.State) time.Duration {
	return max(r.e.cfg.Lease, st.Heartbeat)
}
