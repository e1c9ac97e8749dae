package tasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/tracing"
)

// QueueConfig configures a Queue.
type QueueConfig struct {
	// MaxRetry is how often asynq retries a task that failed for an
	// infrastructure reason (step retries are the engine's). Default 25.
	MaxRetry int
	// Timeout bounds one task's run. Default 2m.
	Timeout time.Duration
}

// Queue enqueues the engine's tasks with asynq. It implements engine.Queue.
type Queue struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	cfg       QueueConfig
}

// NewQueue returns a queue over a shared Redis client; closing the queue
// does not close rdb.
func NewQueue(rdb redis.UniversalClient, cfg QueueConfig) *Queue {
	cfg.MaxRetry = cmp.Or(cfg.MaxRetry, 25)
	cfg.Timeout = cmp.Or(cfg.Timeout, 2*time.Minute)
	return &Queue{
		client:    asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		cfg:       cfg,
	}
}

// Enqueue queues an advance task. A task with the same ID that is still
// waiting to run (pending, scheduled or retrying) counts as success: it will
// do the same work. A task with the same ID that is running, or done and
// kept (completed, archived), will not run again, so the task is queued
// under a fresh ID instead. The task carries the trace context of ctx, if
// any (see AdvancePayload.TraceParent).
func (q *Queue) Enqueue(ctx context.Context, t engine.Task) error {
	task, err := newAdvanceTask(t, tracing.TraceParent(ctx))
	if err != nil {
		return err
	}
	opts := []asynq.Option{asynq.Queue(t.Queue), asynq.MaxRetry(q.cfg.MaxRetry), asynq.Timeout(q.cfg.Timeout)}
	if t.Delay > 0 {
		opts = append(opts, asynq.ProcessIn(t.Delay))
	}
	id := t.TaskID
	for try := 0; ; try++ {
		o := opts
		if id != "" {
			o = append(o, asynq.TaskID(id))
		}
		_, err = q.client.EnqueueContext(ctx, task, o...)
		if !errors.Is(err, asynq.ErrTaskIDConflict) || try >= 3 {
			return err
		}
		waiting, werr := q.Waiting(ctx, t.Queue, id)
		switch {
		case werr != nil:
			return werr
		case waiting:
			return nil
		}
		// Running (perhaps the very task that queues this one), or kept
		// after it ran: it will not run again.
		id = fmt.Sprintf("%s~%d", t.TaskID, rand.Uint32())
	}
}

// Waiting reports whether a task is queued and not running yet.
func (q *Queue) Waiting(_ context.Context, queue, taskID string) (bool, error) {
	info, err := q.inspector.GetTaskInfo(queue, taskID)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch info.State {
	case asynq.TaskStatePending, asynq.TaskStateScheduled, asynq.TaskStateRetry, asynq.TaskStateAggregating:
		return true, nil
	}
	return false, nil
}

// RetryDelay is the asynq RetryDelayFunc for orderflow's tasks. It retries a
// first task that overtook its instance's creation almost at once, and
// infrastructure failures with capped exponential backoff and jitter.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, engine.ErrNotReady) {
		return time.Duration(n+1) * 100 * time.Millisecond
	}
	ceiling := min(time.Second<<min(n, 5), 30*time.Second)
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1))
}
