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

// The backlog follows the pending lists while it is read, and an idle
// worker, which reads nothing, costs Redis nothing for it.
func TestBacklogRefreshesOnlyWhileRead(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	rdb := r.Client(t)
	var llens atomic.Int64 // the backlog's reads of the pending lists
	rdb.AddHook(redistest.Observer(func(cmds []redis.Cmder) {
		for _, c := range cmds {
			if c.Name() == "llen" {
				llens.Add(1)
			}
		}
	}))
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
	before := llens.Load()
	time.Sleep(200 * time.Millisecond)
	require.Equal(t, before, llens.Load(), "no read, no refresh")
}
