package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/statemachine"
)

// SignalOutcome says what a signal did.
type SignalOutcome string

// The outcomes of Signal.
const (
	// SignalApplied: the signal moved the instance at once (it ran no step).
	SignalApplied SignalOutcome = "applied"
	// SignalRecorded: the signal was recorded; the worker acts on it at the
	// step's next boundary.
	SignalRecorded SignalOutcome = "recorded"
	// SignalReplayed: the same signal was already received or acted on.
	SignalReplayed SignalOutcome = "replayed"
	// SignalRejected: the instance cannot take the signal in its state.
	SignalRejected SignalOutcome = "rejected"
)

// Signal delivers a signal (such as "cancel") to an instance. It returns the
// outcome and the instance after it.
func (e *Engine) Signal(ctx context.Context, id, signal string) (SignalOutcome, *statemachine.Instance, error) {
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
		if replayed(in, signal) {
			return SignalReplayed, in, nil
		}
		ev := st.OnSignal[signal]
		if st.Terminal() || ev == "" {
			return SignalRejected, in, nil
		}
		dst, err := def.Destination(st.Name, ev)
		if err != nil {
			return "", in, err
		}
		detail, _ := json.Marshal(map[string]string{"signal": signal})
		// A signal is acknowledged with 202: durable first.
		c := statemachine.Change{
			ID: id, ExpectState: in.State, ExpectRev: in.Rev, Lease: statemachine.LeaseIgnore, Durable: true,
		}
		outcome := SignalRecorded
		if st.Step == "" {
			// Nothing runs in this state, so the transition can happen now.
			// A worker about to leave the state loses its compare-and-set.
			next, _ := def.State(dst)
			c.State, c.Status = dst, next.Status
			c.Event = &statemachine.Event{Type: statemachine.EventTransition, Event: ev, From: st.Name, To: dst, Detail: detail}
			if signal == statemachine.SignalCancel {
				c.Fields.Reason(statemachine.ReasonCancelled)
			}
			outcome = SignalApplied
		} else {
			c.State, c.Status, c.KeepLease = st.Name, st.Status, true
			c.Event = &statemachine.Event{Type: statemachine.EventSignal, Event: signal, Detail: detail}
			c.Fields.Signal(signal, true)
		}
		_, err = e.store.Apply(ctx, c)
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
		e.nudge(ctx, def, after)
		return outcome, after, nil
	}
	return "", nil, fmt.Errorf("signal %s: too many concurrent writes", id)
}

func replayed(in *statemachine.Instance, signal string) bool {
	if in.Signals[signal] {
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
