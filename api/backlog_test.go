package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// fillQueue enqueues n tasks into the workflow queue, as a backlog that no
// worker drains.
func fillQueue(t *testing.T, rdb redis.UniversalClient, n int) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(rdb)
	for i := range n {
		_, err := c.Enqueue(asynq.NewTask("backlog", nil), asynq.Queue(statemachine.DefaultQueue), asynq.TaskID(fmt.Sprint("fill-", i)))
		require.NoError(t, err)
	}
}

// Over the backlog bound new orders get 503 with Retry-After and nothing is
// written; reads and cancels keep working; below it orders are accepted
// again.
func TestShedding(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rdb := r.Client(t)
		b := setupConfig(t, rdb, api.Config{MaxBacklog: 5, BacklogInterval: 10 * time.Millisecond}, api.Deps{})
		b.create(orderBody(withID("accepted-before")))
		b.create(orderBody(withID("to-cancel")))

		fillQueue(t, rdb, 10)
		require.Eventually(t, func() bool {
			return b.post(orderBody()).Code == http.StatusServiceUnavailable
		}, 5*time.Second, 5*time.Millisecond)
		res := b.post(orderBody(withID("shed")), api.HeaderIdempotencyKey, "shed-key")
		p := requireProblem(t, res, http.StatusServiceUnavailable)
		require.Contains(t, p.Type, "overloaded")
		requireRetryAfter(t, res)
		requireProblem(t, b.get("/v1/orders/shed"), http.StatusNotFound)

		// Reads and cancels flow while new orders are shed.
		require.Equal(t, "running", b.order("accepted-before").Status)
		require.Equal(t, http.StatusOK, b.get("/v1/orders/accepted-before/history").Code)
		require.Subset(t, b.listIDs(""), []string{"accepted-before", "to-cancel"})
		requireCancelled(t, b.cancel("to-cancel"), false)

		_, err := asynq.NewInspectorFromRedisClient(rdb).DeleteAllPendingTasks(statemachine.DefaultQueue)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			return b.post(orderBody(withID("after")), api.HeaderIdempotencyKey, "shed-key").Code == http.StatusAccepted
		}, 5*time.Second, 5*time.Millisecond, "the key of the shed request was not kept")
	})
}

func TestSheddingOff(t *testing.T) {
	t.Parallel()
	rdb := redistest.New(t, redistest.BackendMiniredis).Client(t)
	b := setupConfig(t, rdb, api.Config{MaxBacklog: -1}, api.Deps{})
	fillQueue(t, rdb, 10)
	b.create(orderBody())
}
