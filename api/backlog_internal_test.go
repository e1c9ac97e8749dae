package api

import (
	"context"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// asynqPendingKey is asynq's own: LLEN of it is the Inspector's Pending.
func TestAsynqPendingKey(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rdb := r.Client(t)
		c := asynq.NewClientFromRedisClient(rdb)
		for i := range 7 {
			_, err := c.Enqueue(asynq.NewTask("t", nil), asynq.Queue(statemachine.DefaultQueue), asynq.TaskID(fmt.Sprint(i)))
			require.NoError(t, err)
		}
		info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(statemachine.DefaultQueue)
		require.NoError(t, err)
		require.Equal(t, 7, info.Pending)
		n, err := rdb.LLen(context.Background(), asynqPendingKey(statemachine.DefaultQueue)).Result()
		require.NoError(t, err)
		require.EqualValues(t, info.Pending, n)
	})
}
