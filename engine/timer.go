package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Durable timers. A waiting state (one that runs no step) with a Timeout
// ends when a signal moves it, or at its deadline, whichever comes first.
// The deadline is written with the transition that enters the state, so it
// survives restarts; the run that finds the instance waiting queues a task
// due at the deadline (asynq's scheduled tasks are durable) and writes the
// due entry there, so the reaper fires it too if the task is lost. Whoever
// comes first after the deadline fires OnTimeout with a compare-and-set: it
// fires once. A deadline that passes while the instance is paused fires on
// resume.

// waitingRecheck is how often the reaper looks at an instance that waits
// for a signal with no deadline.
const waitingRecheck = time.Hour

// waitOrTimeOut handles a waiting state: it fires the timeout when the
// deadline has passed, and otherwise arranges to come back at it. It
// reports done when the run must end (the instance waits).
func (r *run) waitOrTimeOut(ctx context.Context, st *statemachine.State) (done bool, err error) {
	now := r.e.store.Now()
	if st.Timeout == 0 {
		return true, r.e.store.ScheduleDue(context.WithoutCancel(ctx), r.id, now.Add(waitingRecheck), "")
	}
	deadline := r.inst.Deadline
	if deadline.IsZero() {
		// Entered before it had a timer (a migrated instance): it starts
		// now.
		deadline = now.Add(st.Timeout)
		if err := r.commitLoop(ctx, st, func() decision {
			var f statemachine.Fields
			f.Deadline(deadline)
			return decision{change: statemachine.Change{State: st.Name, Status: st.Status, Fields: f, KeepLease: true}}
		}); err != nil || r.inst == nil || r.inst.State != st.Name {
			return r.inst == nil, err
		}
	}
	if !deadline.After(now) {
		detail, _ := json.Marshal(map[string]string{"timer": "deadline", "deadline": deadline.UTC().Format(time.RFC3339Nano)})
		return false, r.commitLoop(ctx, st, func() decision {
			if r.inst.Paused {
				return decision{skip: true} // fires on resume
			}
			return r.moveChange(st, st.OnTimeout, nil, &statemachine.Event{Detail: detail})
		})
	}
	ctx = context.WithoutCancel(ctx)
	t := Task{InstanceID: r.id, Queue: r.inst.QueueOf(r.def, st), Delay: deadline.Sub(now),
		TaskID: fmt.Sprintf("adv:%s:timer:%d", r.id, deadline.UnixMilli())}
	if err := r.e.store.ScheduleDue(ctx, r.id, deadline, ""); err != nil {
		return true, err
	}
	if err := r.e.queue.Enqueue(ctx, t); err != nil {
		// The due entry fires it.
		r.log.Warn("queueing a timer's task; the reaper will fire it", "err", err)
	}
	return true, nil
}
