package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// TestClusterAsynqQueues runs what orderflow asks of asynq on a real
// 3-master Redis Cluster, on every queue it uses (workflow, inventory,
// payments, shipping and their :high and :low variants, whose
// hash-tagged keys asynq:{<queue>} land on different masters): enqueue
// with a TaskID and its conflict, weighted processing by a server, a
// failure retried, a delayed task, a task archived by SkipRetry, and the
// Inspector calls the engine and asynqmon make. Each call runs asynq's Lua
// scripts on the queue's slot; any that touched two slots would fail.
func TestClusterAsynqQueues(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	rdb := c.Client(t)
	ctx := context.Background()
	queues := statemachine.WeightedQueues(map[string]int{})
	for _, q := range statemachine.NewOrderRegistry().Queues() {
		for _, p := range statemachine.Priorities {
			queues[statemachine.QueueName(q, p)] = p.Weight()
		}
	}
	require.Len(t, queues, 12)
	masters := map[string]bool{}
	for q := range queues {
		addr, err := c.MasterOf(statemachine.SlotOf("asynq:{" + q + "}:pending"))
		require.NoError(t, err)
		masters[addr] = true
	}
	require.Len(t, masters, 3, "the queues live on every master")

	q := tasks.NewQueue(rdb, tasks.QueueConfig{MaxRetry: 3})
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	var mu sync.Mutex
	ran := map[string]int{}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 4, Queues: queues, TaskCheckInterval: 20 * time.Millisecond,
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		LogLevel:                 asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeWorkflowAdvance, func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		queue, _ := asynq.GetQueueName(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		mu.Lock()
		ran[queue+"/"+id]++
		mu.Unlock()
		switch {
		case id == "fail-once" && retried == 0:
			return errors.New("a transient failure")
		case id == "archive":
			return fmt.Errorf("a permanent failure: %w", asynq.SkipRetry)
		}
		return nil
	})

	var want []string
	for name := range queues {
		id := "t-" + name
		require.NoError(t, q.Enqueue(ctx, engine.Task{InstanceID: "o1", Queue: name, TaskID: id}))
		// The same TaskID while it waits: a conflict asynq reports, which
		// Enqueue takes for success.
		require.NoError(t, q.Enqueue(ctx, engine.Task{InstanceID: "o1", Queue: name, TaskID: id}))
		waiting, err := q.Waiting(ctx, name, id)
		require.NoError(t, err)
		require.True(t, waiting, "%s waits in %s", id, name)
		want = append(want, name+"/"+id)
	}
	require.NoError(t, q.Enqueue(ctx, engine.Task{InstanceID: "o2", Queue: "payments", TaskID: "fail-once"}))
	require.NoError(t, q.Enqueue(ctx, engine.Task{InstanceID: "o3", Queue: "shipping:low", TaskID: "later", Delay: 300 * time.Millisecond}))
	require.NoError(t, q.Enqueue(ctx, engine.Task{InstanceID: "o4", Queue: "inventory:high", TaskID: "archive"}))
	info, err := inspector.GetTaskInfo("shipping:low", "later")
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateScheduled, info.State)

	names, err := inspector.Queues()
	require.NoError(t, err)
	require.ElementsMatch(t, slices.Collect(func(yield func(string) bool) {
		for name := range queues {
			if !yield(name) {
				return
			}
		}
	}), names)
	qi, err := inspector.GetQueueInfo("workflow")
	require.NoError(t, err)
	require.Equal(t, 1, qi.Pending)
	pending, err := inspector.ListPendingTasks("payments")
	require.NoError(t, err)
	require.Len(t, pending, 2)

	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
	want = append(want, "payments/fail-once", "shipping:low/later", "inventory:high/archive")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range want {
			if ran[w] == 0 {
				return false
			}
		}
		return ran["payments/fail-once"] == 2
	}, 30*time.Second, 20*time.Millisecond, "every task ran, the failed one twice")

	require.Eventually(t, func() bool {
		info, err := inspector.GetTaskInfo("inventory:high", "archive")
		return err == nil && info.State == asynq.TaskStateArchived
	}, 10*time.Second, 20*time.Millisecond)
	archived, err := inspector.ListArchivedTasks("inventory:high")
	require.NoError(t, err)
	require.Len(t, archived, 1)
	require.NoError(t, inspector.DeleteTask("inventory:high", "archive"))
	servers, err := inspector.Servers()
	require.NoError(t, err)
	require.Len(t, servers, 1)
	history, err := inspector.History("payments", 1)
	require.NoError(t, err)
	require.Len(t, history, 1)
	require.Positive(t, history[0].Processed)
	slot, err := inspector.ClusterKeySlot("payments")
	require.NoError(t, err)
	require.EqualValues(t, statemachine.SlotOf("asynq:{payments}"), slot)
	nodes, err := inspector.ClusterNodes("payments")
	require.NoError(t, err)
	require.NotEmpty(t, nodes)
}
