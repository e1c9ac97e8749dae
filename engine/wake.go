package engine

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// The wake fast path. asynq finds new tasks by polling, which costs up to a
// poll interval per hop on an idle system. The API also pushes every new
// instance's ID on a Redis list (statemachine.WakeKey); an idle worker
// blocks on that list and claims the instance under the engine's lease at
// once. The asynq task stays the durable path: when it comes, it finds the
// instance leased or finished and does nothing. A busy worker leaves the list
// alone (it is capped), so under load every instance goes through asynq.

// idleAfter is how long the worker must have started no task-driven advance
// for the fast path to read the wake list: a worker whose asynq queues keep
// it busy leaves new instances to asynq, so that each instance's task is not
// dequeued only to find the instance already done.
const idleAfter = 10 * time.Millisecond

// idle reports whether the worker runs no task-driven advance and started
// none lately.
func (e *Engine) idle() bool {
	return e.inFlight.Load() == 0 && time.Since(time.Unix(0, e.lastTaskStart.Load())) > idleAfter
}

// RunWake runs the wake fast path until ctx ends, with WakeWorkers
// goroutines. They read the list only while the worker is idle.
// rdb is a client of its own, used only for the blocking reads: closing it
// is what interrupts them at shutdown, as go-redis does not abort a blocking
// read when its context ends.
func (e *Engine) RunWake(ctx context.Context, rdb redis.UniversalClient) {
	n := e.cfg.WakeWorkers
	if n <= 0 {
		return
	}
	done := make(chan struct{})
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			e.wakeLoop(ctx, rdb)
		}()
	}
	for range n {
		<-done
	}
}

func (e *Engine) wakeLoop(ctx context.Context, rdb redis.UniversalClient) {
	for ctx.Err() == nil {
		if !e.idle() || e.stopping.Load() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		res, err := rdb.BLPop(ctx, e.cfg.WakeTimeout, statemachine.WakeKey).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			if ctx.Err() == nil {
				e.log.Debug("reading the wake list", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		id := res[1]
		// Not cancelled with the loop: a stopping worker lets the running
		// step finish and record its result, then hands off (see Stop).
		err = e.advance(context.WithoutCancel(ctx), id, AdvanceOptions{Queue: statemachine.DefaultQueue, TaskID: "wake"}, false)
		if err != nil && ctx.Err() == nil {
			// The asynq task and the reaper still drive the instance.
			e.log.Debug("fast path left the instance to its task", "order_id", id, "err", err)
		}
	}
}
