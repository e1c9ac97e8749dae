package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Dead letters. A step that never gives up (a compensation, or an
// irreversible step such as a shipment) retries through outages and odd
// answers, but not forever: after its policy's MaxAttempts it is parked. The
// instance stays running in its state, holds no lease, queues no retry and
// grows no history; it shows in the dead-letter index, the instance's
// DeadLetter field and the orderflow_dead_letters_total metric, and waits for
// an operator to retry it (RetryDeadLetter) or to settle it by hand and
// resolve it (ResolveDeadLetter).

// deadLetterRecheck is how often the reaper looks at a parked instance.
const deadLetterRecheck = time.Hour

// ErrNotDeadLettered is returned by RetryDeadLetter and ResolveDeadLetter
// for an instance that has no parked step.
var ErrNotDeadLettered = errors.New("instance has no dead-lettered step")

// deadLetterChange parks the current step after its last attempt.
func (r *run) deadLetterChange(st *statemachine.State, f statemachine.Fields, ev *statemachine.Event, out outcome) decision {
	f.DeadLetter(st.Step)
	if !r.inst.NextAt.IsZero() {
		f.NextAt(time.Time{})
	}
	ev.Type = statemachine.EventDeadLettered
	ev.Detail, _ = json.Marshal(map[string]any{"attempts": out.attempt})
	return decision{change: statemachine.Change{State: st.Name, Status: st.Status, Event: ev, Fields: f}, parked: true}
}

// parked finishes parking once the write that parked the step won: the
// instance joins the dead-letter index, and the run ends.
func (r *run) parked(ctx context.Context, st *statemachine.State) error {
	now := r.e.store.Now()
	r.log.Error("DEAD LETTER: a step that cannot give up exhausted its attempts; an operator must retry or resolve it",
		"step", st.Step, "state", st.Name, "attempts", r.inst.Attempts[st.Step], "last_error", r.inst.LastError)
	r.e.metrics.deadLettered(r.inst.Workflow, st.Step)
	return r.e.store.Park(context.WithoutCancel(ctx), r.id, now, now.Add(deadLetterRecheck))
}

// RetryDeadLetter gives a parked step a fresh budget of attempts and runs it
// again now. reason is kept in the history. It returns the instance after
// the change, or ErrNotDeadLettered.
func (e *Engine) RetryDeadLetter(ctx context.Context, id, reason string) (*statemachine.Instance, error) {
	return e.operate(ctx, id, "retry", reason, func(in *statemachine.Instance, def *statemachine.Definition, st *statemachine.State, c *statemachine.Change) {
		c.State, c.Status, c.KeepLease = st.Name, st.Status, true
		c.Fields.DeadLetter("")
		c.Fields.Attempt(st.Step, 0)
		c.Event = &statemachine.Event{Type: statemachine.EventSignal, Event: "retry", Step: st.Step}
	})
}

// ResolveDeadLetter records that an operator settled a parked step by hand
// (refunded the customer, say) and moves the instance on as if the step had
// succeeded. reason is kept in the history. It returns the instance after the
// change, or ErrNotDeadLettered.
func (e *Engine) ResolveDeadLetter(ctx context.Context, id, reason string) (*statemachine.Instance, error) {
	return e.operate(ctx, id, "resolve", reason, func(in *statemachine.Instance, def *statemachine.Definition, st *statemachine.State, c *statemachine.Change) {
		event := st.OnSuccess
		if in.Reason == statemachine.ReasonCancelled && st.OnSuccessCancelled != "" {
			event = st.OnSuccessCancelled
		}
		dst, _ := def.Destination(st.Name, event)
		next, _ := def.State(dst)
		c.State, c.Status = dst, next.Status
		c.Fields.DeadLetter("")
		c.Fields.Result("resolved_"+st.Step, "operator")
		c.Event = &statemachine.Event{Type: statemachine.EventTransition, Event: event, From: st.Name, To: dst, Step: st.Step}
	})
}

// finishOperation completes an operator's action on an instance whose
// record is no longer parked: it leaves the dead-letter index and, unless
// it finished, gets a task to carry it on.
func (e *Engine) finishOperation(ctx context.Context, in *statemachine.Instance) {
	listed, err := e.store.Parked(ctx, in.ID)
	if err != nil || !listed {
		return
	}
	if err := e.store.Unpark(ctx, in.ID); err != nil {
		e.log.Warn("taking an instance out of the dead-letter index", "order_id", in.ID, "err", err)
		return
	}
	if in.Status.Terminal() {
		return
	}
	if def, err := e.registry.Get(in.Workflow, in.Version); err == nil {
		e.nudge(ctx, def, in)
	}
}

// operate applies an operator's action to a parked instance with a
// compare-and-set, then queues a task to carry it on.
func (e *Engine) operate(ctx context.Context, id, action, reason string,
	build func(in *statemachine.Instance, def *statemachine.Definition, st *statemachine.State, c *statemachine.Change)) (*statemachine.Instance, error) {
	for tries := 0; tries < 20; tries++ {
		in, err := e.store.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if in.DeadLetter == "" || in.Status.Terminal() {
			// An earlier action may have un-parked the record and lost its
			// reply before it finished the job: finish it.
			e.finishOperation(ctx, in)
			return in, ErrNotDeadLettered
		}
		def, err := e.registry.Get(in.Workflow, in.Version)
		if err != nil {
			return in, err
		}
		st, ok := def.State(in.State)
		if !ok || st.Step != in.DeadLetter {
			return in, fmt.Errorf("%s %s: parked step %q does not run in state %q", action, id, in.DeadLetter, in.State)
		}
		c := statemachine.Change{ID: id, ExpectState: in.State, ExpectRev: in.Rev, Lease: statemachine.LeaseIgnore, Durable: true}
		build(in, def, st, &c)
		c.Event.Detail, _ = json.Marshal(map[string]string{"signal": action, "reason": reason})
		_, err = e.store.Apply(ctx, c)
		if errors.Is(err, statemachine.ErrStale) {
			continue
		}
		if err != nil {
			// The write may have landed with its reply lost (or not be
			// durable yet): finish the job if it did.
			if after, lerr := e.store.Load(ctx, id); lerr == nil && after.DeadLetter == "" {
				e.finishOperation(ctx, after)
			}
			return in, err
		}
		after, err := e.store.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		e.log.Info("operator action on a dead-lettered step", "order_id", id, "action", action, "step", st.Step, "reason", reason)
		e.finishOperation(ctx, after)
		return after, nil
	}
	return nil, fmt.Errorf("%s %s: too many concurrent writes", action, id)
}
