package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// SignalOutcome says what a signal did.
type SignalOutcome string

// The outcomes of Signal.
const (
	// SignalApplied: the signal took effect at once (it moved an instance
	// that ran no step, or paused or resumed it).
	SignalApplied SignalOutcome = "applied"
	// SignalRecorded: the signal was recorded; the worker acts on it at the
	// step's next boundary.
	SignalRecorded SignalOutcome = "recorded"
	// SignalReplayed: the same signal was already received or acted on.
	SignalReplayed SignalOutcome = "replayed"
	// SignalRejected: the instance cannot take the signal in its state.
	SignalRejected SignalOutcome = "rejected"
)

// The signals the engine handles itself, in every running state, beside
// those a definition maps to events (State.OnSignal: cancel, approve,
// reject, ...).
const (
	// SignalPause stops new steps from starting; a running step finishes
	// and records its result. Timers keep running, and a deadline that
	// passes while paused fires on resume.
	SignalPause = "pause"
	// SignalResume lifts a pause.
	SignalResume = "resume"
)

// Signal delivers a signal to an instance, with an optional reason that the
// history keeps. It returns the outcome and the instance after it. Every
// signal is idempotent: sending it again is a replay.
func (e *Engine) Signal(ctx context.Context, id, signal, reason string) (SignalOutcome, *statemachine.Instance, error) {
	for tries := 0; tries < 20; tries++ {
		in, err := e.store.Load(ctx, id)
		if err != nil {
			return "", nil, err
		}
		def, err := e.registry.Get(in.Workflow, in.Version)
		if err != nil {
			return "", in, err
		}
		st, ok := def.State(in.State)
		if !ok {
			return "", in, fmt.Errorf("signal %s: unknown state %q", id, in.State)
		}
		outcome, c := e.signalChange(in, def, st, signal, reason)
		if c == nil {
			return outcome, in, nil
		}
		_, err = e.store.Apply(ctx, *c)
		if errors.Is(err, statemachine.ErrStale) {
			continue
		}
		if err != nil {
			return "", in, err
		}
		after, err := e.store.Load(ctx, id)
		if err != nil {
			return "", nil, err
		}
		if signal != SignalPause {
			e.nudge(ctx, def, after)
		}
		return outcome, after, nil
	}
	return "", nil, fmt.Errorf("signal %s: too many concurrent writes", id)
}

// signalChange decides what signal does to in: the outcome, and the change
// to write (nil when nothing is written).
func (e *Engine) signalChange(in *statemachine.Instance, def *statemachine.Definition, st *statemachine.State, signal, reason string) (SignalOutcome, *statemachine.Change) {
	// A signal is acknowledged with 202: durable first.
	c := &statemachine.Change{
		ID: in.ID, ExpectState: in.State, ExpectRev: in.Rev, Lease: statemachine.LeaseIgnore, Durable: true,
		State: st.Name, Status: st.Status, KeepLease: true,
	}
	detail, _ := json.Marshal(signalDetail{Signal: signal, Reason: reason})
	record := func() {
		c.Event = &statemachine.Event{Type: statemachine.EventSignal, Event: signal, Detail: detail}
	}
	switch signal {
	case SignalPause, SignalResume:
		pause := signal == SignalPause
		switch {
		case in.Status.Terminal():
			return SignalRejected, nil
		case in.Paused == pause:
			if pause || in.Applied[SignalResume] {
				return SignalReplayed, nil
			}
			return SignalRejected, nil // resuming what was never paused
		}
		c.Fields.Paused(pause)
		c.Fields.Applied(signal)
		record()
		return SignalApplied, c
	}
	if replayed(in, signal) {
		return SignalReplayed, nil
	}
	ev := st.OnSignal[signal]
	if st.Terminal() || ev == "" {
		return SignalRejected, nil
	}
	dst, err := def.Destination(st.Name, ev)
	if err != nil {
		return SignalRejected, nil
	}
	if st.Step != "" {
		// A step runs (or may) in this state: the worker acts on the
		// signal at the step's boundary, recording what the step did.
		c.Fields.Signal(signal, true)
		record()
		return SignalRecorded, c
	}
	// Nothing runs in this state, so the transition happens now. A worker
	// about to leave the state loses its compare-and-set.
	next, _ := def.State(dst)
	// The zero LeaseUntil: the transition releases any lease.
	c.State, c.Status, c.KeepLease = dst, next.Status, false
	c.Event = &statemachine.Event{Type: statemachine.EventTransition, Event: ev, From: st.Name, To: dst, Detail: detail}
	c.Fields.Applied(signal)
	if !in.Deadline.IsZero() {
		c.Fields.Deadline(time.Time{})
	}
	if signal == statemachine.SignalCancel {
		c.Fields.Reason(statemachine.ReasonCancelled)
	}
	if next.Status == statemachine.StatusFailed && in.Reason == "" {
		c.Fields.Reason(statemachine.ReasonFailed)
	}
	enterFields(def, next, in, &c.Fields, e.store.Now())
	return SignalApplied, c
}

// signalDetail is the detail of a signal's history event.
type signalDetail struct {
	Signal string `json:"signal"`
	Reason string `json:"reason,omitempty"`
}

// replayed reports whether the instance already got signal: it is pending,
// or it was acted on (a cancel also counts as acted on once the instance
// compensates a cancellation).
func replayed(in *statemachine.Instance, signal string) bool {
	if in.Signals[signal] || in.Applied[signal] {
		return true
	}
	return signal == statemachine.SignalCancel &&
		(in.Status == statemachine.StatusCancelled || in.Reason == statemachine.ReasonCancelled)
}

// nudge queues a task for an instance that waits (for a retry, or in a
// waiting state) so that a signal takes effect now rather than when the wait
// ends. A worker holding the lease sees the signal at its next write anyway.
func (e *Engine) nudge(ctx context.Context, def *statemachine.Definition, in *statemachine.Instance) {
	if in.Status.Terminal() || in.Leased("", e.store.Now()) {
		return
	}
	st, _ := def.State(in.State)
	t := Task{InstanceID: in.ID, Queue: in.QueueOf(def, st), TaskID: fmt.Sprintf("adv:%s:%d:signal", in.ID, in.Rev)}
	if err := e.store.ScheduleDue(ctx, in.ID, e.store.Now().Add(e.cfg.PickupGrace), t.Queue); err != nil {
		e.log.Warn("announcing a signalled instance; the reaper will drive it", "order_id", in.ID, "err", err)
		return
	}
	if err := e.queue.Enqueue(ctx, t); err != nil {
		e.log.Warn("queueing a task for a signal; the reaper will drive it", "order_id", in.ID, "err", err)
	}
}
