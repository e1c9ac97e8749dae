package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/internal/tracing"
	"github.com/orderflow/orderflow/tasks"
)

// queueBundle is a Queue over one isolated Redis, and an inspector to look
// at what it enqueued.
type queueBundle struct {
	t         *testing.T
	q         *tasks.Queue
	inspector *asynq.Inspector
}

func setupQueue(t *testing.T, r *redistest.Instance, cfg tasks.QueueConfig) *queueBundle {
	t.Helper()
	c := r.Client(t)
	return &queueBundle{t: t, q: tasks.NewQueue(c, cfg), inspector: asynq.NewInspectorFromRedisClient(c)}
}

func (b *queueBundle) enqueue(task engine.Task) {
	b.t.Helper()
	require.NoError(b.t, b.q.Enqueue(context.Background(), task))
}

func (b *queueBundle) waiting(queue, id string) bool {
	b.t.Helper()
	ok, err := b.q.Waiting(context.Background(), queue, id)
	require.NoError(b.t, err)
	return ok
}

func (b *queueBundle) info(queue, id string) *asynq.TaskInfo {
	b.t.Helper()
	info, err := b.inspector.GetTaskInfo(queue, id)
	require.NoError(b.t, err)
	return info
}

// A task carries the trace context of the code that queued it, so that
// the advance it asks for continues the trace.
func TestQueueEnqueueCarriesTheTraceContext(t *testing.T) {
	t.Parallel()
	b := setupQueue(t, redistest.New(t, redistest.BackendMiniredis), tasks.QueueConfig{})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	require.NoError(t, b.q.Enqueue(tracing.ContextWithTraceParent(context.Background(), tp), engine.Task{InstanceID: "traced", Queue: "workflow", TaskID: "t1"}))
	b.enqueue(engine.Task{InstanceID: "untraced", Queue: "workflow", TaskID: "t2"})
	pending, err := b.inspector.ListPendingTasks("workflow")
	require.NoError(t, err)
	got := map[string]string{}
	for _, info := range pending {
		p, err := tasks.DecodeAdvancePayload(info.Payload)
		require.NoError(t, err)
		got[p.OrderID] = p.TraceParent
	}
	require.Equal(t, map[string]string{"traced": tp, "untraced": ""}, got)
}

func TestQueueEnqueue(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupQueue(t, r, tasks.QueueConfig{})
		task := engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "o1:1", Hint: testHint()}
		b.enqueue(task)
		b.enqueue(task) // the same ID: a no-op, not an error

		pending, err := b.inspector.ListPendingTasks("workflow")
		require.NoError(t, err)
		require.Len(t, pending, 1)
		info := pending[0]
		require.Equal(t, "o1:1", info.ID)
		require.Equal(t, tasks.TypeWorkflowAdvance, info.Type)
		require.Equal(t, 25, info.MaxRetry, "default MaxRetry")
		require.Equal(t, 2*time.Minute, info.Timeout, "default Timeout")
		p, err := tasks.DecodeAdvancePayload(info.Payload)
		require.NoError(t, err)
		require.Equal(t, "o1", p.OrderID)
		require.NotNil(t, p.Hint)

		// Without a TaskID every enqueue is a new task.
		b.enqueue(engine.Task{InstanceID: "o2", Queue: "workflow"})
		b.enqueue(engine.Task{InstanceID: "o2", Queue: "workflow"})
		pending, err = b.inspector.ListPendingTasks("workflow")
		require.NoError(t, err)
		require.Len(t, pending, 3)
	})
}

func TestQueueConfig(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupQueue(t, r, tasks.QueueConfig{MaxRetry: 3, Timeout: 7 * time.Second})
		b.enqueue(engine.Task{InstanceID: "o1", Queue: "other", TaskID: "t1"})
		info := b.info("other", "t1")
		require.Equal(t, 3, info.MaxRetry)
		require.Equal(t, 7*time.Second, info.Timeout)
	})
}

func TestQueueEnqueueDelay(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupQueue(t, r, tasks.QueueConfig{})
		before := time.Now()
		b.enqueue(engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "t1", Delay: time.Hour})
		info := b.info("workflow", "t1")
		require.Equal(t, asynq.TaskStateScheduled, info.State)
		require.WithinRange(t, info.NextProcessAt, before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second))

		// A scheduled task holds its ID too.
		b.enqueue(engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "t1"})
		require.Equal(t, asynq.TaskStateScheduled, b.info("workflow", "t1").State)
	})
}

func TestQueueWaiting(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupQueue(t, r, tasks.QueueConfig{})
		require.False(t, b.waiting("workflow", "pending"), "unknown queue")

		b.enqueue(engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "pending"})
		b.enqueue(engine.Task{InstanceID: "o2", Queue: "workflow", TaskID: "scheduled", Delay: time.Hour})
		require.True(t, b.waiting("workflow", "pending"))
		require.True(t, b.waiting("workflow", "scheduled"))
		require.False(t, b.waiting("workflow", "unknown"), "unknown task")
		require.False(t, b.waiting("other", "pending"), "another queue")

		require.NoError(t, b.inspector.ArchiveTask("workflow", "pending"))
		require.False(t, b.waiting("workflow", "pending"), "archived")
	})
}

func TestQueueWaitingReportsRedisErrors(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1}) // fail at once
	t.Cleanup(func() { _ = c.Close() })
	q := tasks.NewQueue(c, tasks.QueueConfig{})
	require.NoError(t, q.Enqueue(context.Background(), engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "t1"}))
	r.Stop()
	_, err := q.Waiting(context.Background(), "workflow", "t1")
	require.Error(t, err, "an unreachable Redis is not a task that is not waiting")
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	t.Run("not ready", func(t *testing.T) {
		t.Parallel()
		for n := range 30 {
			for _, err := range []error{engine.ErrNotReady, fmt.Errorf("advancing: %w", engine.ErrNotReady)} {
				d := tasks.RetryDelay(n, err, nil)
				require.GreaterOrEqual(t, d, time.Duration(n)*100*time.Millisecond, "n=%d", n)
				require.LessOrEqual(t, d, time.Duration(n+1)*100*time.Millisecond, "n=%d", n)
				require.Positive(t, d)
			}
		}
	})
	t.Run("other errors", func(t *testing.T) {
		t.Parallel()
		for n := range 70 {
			ceiling := min(time.Second<<min(n, 5), 30*time.Second)
			seen := map[time.Duration]bool{}
			for range 200 {
				d := tasks.RetryDelay(n, errors.New("redis down"), nil)
				require.GreaterOrEqual(t, d, ceiling/2, "n=%d", n)
				require.LessOrEqual(t, d, ceiling, "n=%d", n)
				require.LessOrEqual(t, d, 30*time.Second, "n=%d", n)
				seen[d] = true
			}
			require.Greater(t, len(seen), 1, "n=%d: jittered", n)
		}
		require.GreaterOrEqual(t, tasks.RetryDelay(1000, errors.New("x"), nil), 15*time.Second, "capped, not wrapped around")
	})
}

// A task with the same ID that is running (or kept after it ran) will not
// run again, so it does not count as queued: the task is queued under a
// fresh ID. Before the fix any ID conflict counted as success, so a
// stopping worker that handed an order off under the ID of its own running
// task queued nothing, and the order waited for the reaper.
func TestQueueEnqueueOverARunningTaskOfTheSameID(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupQueue(t, r, tasks.QueueConfig{})
		c := r.Client(t)
		srv := asynq.NewServerFromRedisClient(c, asynq.Config{Concurrency: 2, Queues: map[string]int{"workflow": 1},
			TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
		runs := make(chan string, 4)
		task := engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "adv:o1:5:h"}
		mux := asynq.NewServeMux()
		var ran atomic.Bool
		mux.HandleFunc(tasks.TypeWorkflowAdvance, func(ctx context.Context, _ *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			runs <- id
			if !ran.Swap(true) {
				// The running task queues its successor under its own ID.
				return b.q.Enqueue(ctx, task)
			}
			return nil
		})
		require.NoError(t, srv.Start(mux))
		t.Cleanup(srv.Shutdown)
		b.enqueue(task)
		require.Equal(t, "adv:o1:5:h", <-runs)
		select {
		case id := <-runs:
			require.Contains(t, id, "adv:o1:5:h~", "the successor ran, under a fresh ID")
		case <-time.After(10 * time.Second):
			t.Fatal("the successor never ran")
		}
	})
}
