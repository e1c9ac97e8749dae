package tasks_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/tasks"
)

// countingHook counts the pipelines a client sends.
type countingHook struct{ pipelines atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

// The backlog follows the pending lists while it is read, and an idle
// worker, which reads nothing, costs Redis nothing for it.
func TestBacklogRefreshesOnlyWhileRead(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	rdb := r.Client(t)
	hook := &countingHook{}
	rdb.AddHook(hook)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, rdb.RPush(ctx, "asynq:{payments}:pending", "a", "b").Err())
	b := tasks.NewBacklog(rdb, []string{"payments", "workflow"}, 10*time.Millisecond)
	go b.Run(ctx)
	require.Eventually(t, func() bool { return b.Len("payments") == 2 }, 5*time.Second, 5*time.Millisecond, "read at start")
	require.Zero(t, b.Len("workflow"))
	require.Zero(t, b.Len("unknown"))

	// Read: the counts follow the list.
	require.NoError(t, rdb.RPush(ctx, "asynq:{payments}:pending", "c").Err())
	require.Eventually(t, func() bool { return b.Len("payments") == 3 }, 5*time.Second, 5*time.Millisecond)

	// Unread: no refresh for many intervals.
	time.Sleep(30 * time.Millisecond) // one refresh may follow the last read
	before := hook.pipelines.Load()
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, before, hook.pipelines.Load(), "no read, no refresh")
}
