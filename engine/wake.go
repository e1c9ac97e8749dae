package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// The wake path. asynq finds new tasks by polling: a worker whose queues
// ran dry sleeps TaskCheckInterval before it looks again, so every hop
// through asynq can cost up to that interval, at any load where the queue
// empties now and then (which is every load below saturation). So every
// hop that needs no delay (a new instance, a handoff to another queue) is
// also announced on the target queue's wake list (statemachine.WakeKey),
// and each worker keeps WakeWorkers goroutines blocked on the wake lists of
// the queues it serves whenever it has spare capacity. An announced
// instance is claimed at once, under the engine's lease; the asynq task
// stays the durable path, and when it comes it finds the instance leased or
// moved on and does nothing. A saturated worker leaves the lists alone
// (they are capped), so at full load every instance goes through asynq and
// no work is done twice.

// RunWake runs the wake path until ctx ends, with WakeWorkers goroutines.
// rdb is a client of its own, used only for the blocking reads: closing it
// is what interrupts them at shutdown, as go-redis does not abort a blocking
// read when its context ends.
func (e *Engine) RunWake(ctx context.Context, rdb redis.UniversalClient) {
	n := e.cfg.WakeWorkers
	if n <= 0 || len(e.cfg.Queues) == 0 {
		return
	}
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			e.wakeLoop(ctx, rdb, i, n)
		}()
	}
	for range n {
		<-done
	}
}

// hasCapacity reports whether the worker runs fewer advances than its
// Concurrency, counting both asynq tasks and the wake path.
func (e *Engine) hasCapacity() bool {
	return e.inFlight.Load()+e.wakeInFlight.Load() < int64(e.cfg.Concurrency)
}

// freed tells waiting wake goroutines that an advance ended.
func (e *Engine) freed() {
	select {
	case e.capacity <- struct{}{}:
	default:
	}
}

// wakeLoop is wake goroutine i of n. It reads the wake lists of shard i
// (mod the shards): with at least as many goroutines as shards, every
// shard always has a reader. With fewer, each goroutine moves on to its
// next shard (i+n, i+2n, ...) whenever a read times out, and reads with a
// timeout shortened in proportion, so that every shard is read now and
// then; an announcement that waits costs at most the asynq task's poll.
func (e *Engine) wakeLoop(ctx context.Context, rdb redis.UniversalClient, i, n int) {
	shards := e.store.Shards().N()
	shard := i % shards
	timeout := e.cfg.WakeTimeout
	if n < shards {
		timeout = max(timeout*time.Duration(n)/time.Duration(shards), 100*time.Millisecond)
	}
	for ctx.Err() == nil {
		if e.stopping.Load() || !e.hasCapacity() {
			// Wait for an advance to end; the timer is a fallback for a
			// signal that went to another goroutine.
			select {
			case <-ctx.Done():
				return
			case <-e.capacity:
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		res, err := blpop(ctx, rdb, timeout, e.wakeKeys(shard))
		switch {
		case errors.Is(err, redis.Nil):
			if n < shards {
				shard = (shard + n) % shards
			}
			continue
		case err != nil:
			if ctx.Err() == nil {
				e.log.Debug("reading the wake lists", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		queue, id := statemachine.QueueOfWakeKey(res[0]), res[1]
		e.wakeInFlight.Add(1)
		// Not cancelled with the loop: a stopping worker lets the running
		// step finish and record its result, then hands off (see Stop).
		err = e.advance(context.WithoutCancel(ctx), id, AdvanceOptions{Queue: queue, TaskID: "wake"}, false)
		e.wakeInFlight.Add(-1)
		e.freed()
		if err != nil && ctx.Err() == nil {
			// The asynq task and the reaper still drive the instance.
			e.log.Debug("wake path left the instance to its task", "order_id", id, "err", err)
		}
	}
}

// wakeKeys returns the wake lists of the worker's queues in shard, in the
// order to read them: BLPOP serves the first non-empty list, so the order
// is drawn at random with each queue's weight (as asynq draws its queues),
// and no queue starves.
func (e *Engine) wakeKeys(shard int) []string {
	type keyed struct {
		key  string
		rank float64
	}
	ks := make([]keyed, 0, len(e.cfg.Queues))
	for q, w := range e.cfg.Queues {
		// Efraimidis–Spirakis: the largest u^(1/w) first.
		ks = append(ks, keyed{e.store.Shards().WakeKey(shard, q), math.Log(1-rand.Float64()) / float64(max(w, 1))})
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].rank > ks[j].rank })
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.key
	}
	return out
}

// blpop is BLPOP with a timeout that may be under a second (go-redis's
// BLPop rounds those up to one second; Redis takes fractions of a second
// since 6.0).
func blpop(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration, keys []string) ([]string, error) {
	if timeout >= time.Second {
		return rdb.BLPop(ctx, timeout, keys...).Result()
	}
	args := make([]any, 0, len(keys)+2)
	args = append(args, "blpop")
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64))
	return rdb.Do(ctx, args...).StringSlice()
}
