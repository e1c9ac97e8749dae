package tasks_test

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/tasks"
)

func TestQueueCollector(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupQueue(t, r, tasks.QueueConfig{})
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(tasks.NewQueueCollector(r.Client(t), slog.New(slog.DiscardHandler)))
		n, err := testutil.GatherAndCount(reg)
		require.NoError(t, err)
		require.Zero(t, n, "no queue yet, no series")

		b.enqueue(engine.Task{InstanceID: "o1", Queue: "workflow", TaskID: "t1"})
		b.enqueue(engine.Task{InstanceID: "o2", Queue: "payments", TaskID: "t2"})
		b.enqueue(engine.Task{InstanceID: "o3", Queue: "payments", TaskID: "t3"})
		for name, want := range map[string]int{
			"asynq_tasks_enqueued_total": 12, "asynq_queue_size": 2, "asynq_queue_latency_seconds": 2,
			"asynq_queue_memory_usage_approx_bytes": 2, "asynq_tasks_processed_total": 2, "asynq_tasks_failed_total": 2,
			"asynq_queue_paused_total": 2,
		} {
			n, err := testutil.GatherAndCount(reg, name)
			require.NoError(t, err)
			require.Equal(t, want, n, name)
		}
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() != "asynq_queue_size" {
				continue
			}
			for _, m := range f.GetMetric() {
				want := map[string]float64{"workflow": 1, "payments": 2}[m.GetLabel()[0].GetValue()]
				require.Equal(t, want, m.GetGauge().GetValue())
			}
		}
	})
}
