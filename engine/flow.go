package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Flow control. A FlowControl (package flowcontrol) gates the attempts of
// the steps it governs on limits shared by every worker: a rate limit per
// provider, a concurrency limit per key of the input, a circuit breaker. The
// engine asks it before an attempt begins; a step that may not run yet
// waits without using an attempt: in place for a short wait, through a
// delayed task for a longer one, or parked until the flow control wakes it
// (Engine.Wake) when what it waits for comes free. An engine without one
// pays nothing.

// FlowControl gates the attempts of steps.
type FlowControl interface {
	// Governs reports whether attempts of st's step are subject to any
	// limit. Only those ask Admit, and only those begin their attempt with
	// a write of its own (rather than in the write that entered the state).
	Governs(st *statemachine.State) bool
	// Admit asks whether an attempt of st's step may begin now for in.
	Admit(ctx context.Context, in *statemachine.Instance, st *statemachine.State) (Admission, error)
}

// Admission is a FlowControl's answer to Admit.
type Admission struct {
	// Wait, when positive, says the attempt may not begin yet: the engine
	// asks again after Wait. No attempt is used.
	Wait time.Duration
	// Park says the attempt may not begin until the flow control wakes the
	// instance (Engine.Wake). The engine also looks again after
	// Config.ParkRecheck, so a lost wake-up costs at most that.
	Park bool
	// Reason says why the step waits, for the logs.
	Reason string
	// Done, when set, is called exactly once with the attempt's outcome
	// (nil on success), or with ErrNotAttempted when the admitted attempt
	// never ran (the order moved on meanwhile).
	Done func(ctx context.Context, err error)
}

// ErrNotAttempted is passed to Admission.Done when an admitted attempt did
// not run.
var ErrNotAttempted = errors.New("admitted attempt did not run")

// gated reports whether st's step is governed by the flow control.
func (e *Engine) gated(st *statemachine.State) bool {
	return e.cfg.Flow != nil && st.Step != "" && e.cfg.Flow.Governs(st)
}

// continuesInline reports whether a run may go on into a step of queue q
// without a hop: this worker serves q, and nothing waits in q (otherwise
// the order queues behind what waits there, and the worker's queue weights
// decide, so a flood of one kind of step cannot starve the rest).
func (e *Engine) continuesInline(q string) bool {
	if _, ok := e.cfg.Queues[q]; !ok {
		return false
	}
	return e.cfg.Backlog == nil || e.cfg.Backlog(q) == 0
}

// admit asks the flow control whether the current step may begin an
// attempt. It reports done when the run must end (the order waits).
func (r *run) admit(ctx context.Context, st *statemachine.State) (done bool, err error) {
	for {
		adm, err := r.e.cfg.Flow.Admit(ctx, r.inst, st)
		if err != nil {
			return true, fmt.Errorf("admitting %s: %w", st.Step, err)
		}
		switch {
		case adm.Park:
			r.e.metrics.flowWait(r.inst.Workflow, st.Step, "park")
			r.log.Debug("step parked by flow control", "step", st.Step, "reason", adm.Reason)
			return true, r.park(ctx, r.e.cfg.ParkRecheck)
		case adm.Wait > maxInlineWait || (adm.Wait > maxBusyInlineWait && r.e.backlogged()):
			// A long wait, or one while tasks wait for this worker: the
			// run ends and a delayed task asks again, rather than holding
			// one of the worker's Concurrency for the wait.
			r.e.metrics.flowWait(r.inst.Workflow, st.Step, "delay")
			r.log.Debug("step delayed by flow control", "step", st.Step, "reason", adm.Reason, "wait", adm.Wait)
			t := Task{InstanceID: r.id, Queue: r.queue, Delay: adm.Wait,
				TaskID: fmt.Sprintf("adv:%s:%d:flow:%s", r.id, r.inst.Rev, r.token)}
			return true, r.handoffTask(ctx, t, r.e.store.Now().Add(adm.Wait+r.e.cfg.RetryGrace), "flow")
		case adm.Wait > 0:
			r.e.metrics.flowWait(r.inst.Workflow, st.Step, "inline")
			r.log.Debug("step waits in place for flow control", "step", st.Step, "reason", adm.Reason, "wait", adm.Wait)
			if _, err := r.e.store.Renew(ctx, r.id, r.token, r.e.store.Now().Add(adm.Wait+r.e.cfg.Lease)); err != nil {
				return true, err
			}
			select {
			case <-ctx.Done():
				return true, ctx.Err()
			case <-time.After(adm.Wait):
			}
			continue
		}
		r.admission = adm
		return false, nil
	}
}

// maxBusyInlineWait is the longest flow-control wait a run waits out in
// place while tasks wait in the worker's queues. A provider's 429 hold or
// its rate limit makes every attempt on it wait at once; waited in place,
// those waits took every one of the worker's Concurrency, and the orders
// queued behind them (among them those resumed after a worker died) waited
// for the waiters.
const maxBusyInlineWait = 50 * time.Millisecond

// backlogged reports whether tasks wait in any queue the worker serves.
func (e *Engine) backlogged() bool {
	if e.cfg.Backlog == nil {
		return false
	}
	for q := range e.cfg.Queues {
		if e.cfg.Backlog(q) > 0 {
			return true
		}
	}
	return false
}

// settleAdmission reports the attempt's outcome to the flow control.
func (r *run) settleAdmission(ctx context.Context, err error) {
	if r.admission.Done != nil {
		r.admission.Done(context.WithoutCancel(ctx), err)
	}
	r.admission = Admission{}
}

// park ends the run with the order waiting for a wake-up: the lease is
// released and the due entry set to recheck, so the reaper looks again if
// no wake-up comes.
func (r *run) park(ctx context.Context, recheck time.Duration) error {
	ctx = context.WithoutCancel(ctx)
	due := r.e.store.Now().Add(recheck)
	if r.holding {
		if err := r.e.store.HandOff(ctx, r.id, r.token, due, ""); err != nil {
			return err
		}
		r.holding = false
		return nil
	}
	return r.e.store.ScheduleDue(ctx, r.id, due, "")
}

// Wake re-drives an instance now: it announces the instance on its queue's
// wake list and queues a task for it. A flow control calls it when what a
// parked step waits for comes free. Waking an instance that does not wait
// costs a task that finds nothing to do.
func (e *Engine) Wake(ctx context.Context, id string) error {
	in, err := e.store.Load(ctx, id)
	if err != nil {
		return err
	}
	if in.Status.Terminal() {
		return nil
	}
	def, err := e.registry.Get(in.Workflow, in.Version)
	if err != nil {
		return err
	}
	st, ok := def.State(in.State)
	if !ok {
		return fmt.Errorf("waking %s: unknown state %q", id, in.State)
	}
	q := in.QueueOf(def, st)
	if err := e.store.ScheduleDue(ctx, id, e.store.Now().Add(e.cfg.PickupGrace), q); err != nil {
		return err
	}
	return e.queue.Enqueue(ctx, Task{InstanceID: id, Queue: q, TaskID: fmt.Sprintf("adv:%s:%d:wake:%s", id, in.Rev, randomHex(4))})
}
