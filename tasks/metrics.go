package tasks

import (
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// QueueCollector exposes the asynq queues to Prometheus: how many tasks
// each holds in each state, how long its oldest pending task has waited,
// and how many it processed and failed. It reads them with asynq's
// Inspector on each scrape (one script per queue), under the names asynq's
// own x/metrics collector uses, so dashboards made for asynq work too.
// Register it in one process per system (the API), not in every worker.
type QueueCollector struct {
	inspector *asynq.Inspector
	log       *slog.Logger
}

// NewQueueCollector returns a collector over a shared Redis client.
func NewQueueCollector(rdb redis.UniversalClient, log *slog.Logger) *QueueCollector {
	return &QueueCollector{inspector: asynq.NewInspectorFromRedisClient(rdb), log: log}
}

// The collector's metrics.
var (
	queueTasksDesc = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Tasks in a queue now, by state (active, pending, scheduled, retry, archived, completed).", []string{"queue", "state"}, nil)
	queueSizeDesc = prometheus.NewDesc("asynq_queue_size",
		"Tasks in a queue now, in every state but completed and archived.", []string{"queue"}, nil)
	queueLatencyDesc = prometheus.NewDesc("asynq_queue_latency_seconds",
		"How long the oldest pending task of a queue has waited.", []string{"queue"}, nil)
	queueMemoryDesc = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Memory a queue's tasks use in Redis, estimated by sampling.", []string{"queue"}, nil)
	queueProcessedDesc = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks a queue processed, succeeded or failed (asynq keeps the count for 90 days).", []string{"queue"}, nil)
	queueFailedDesc = prometheus.NewDesc("asynq_tasks_failed_total",
		"Tasks of a queue whose handler failed (asynq keeps the count for 90 days).", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc("asynq_queue_paused_total",
		"1 when the queue is paused (asynqmon can pause a queue), 0 otherwise.", []string{"queue"}, nil)
)

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueTasksDesc, queueSizeDesc, queueLatencyDesc, queueMemoryDesc,
		queueProcessedDesc, queueFailedDesc, queuePausedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A queue that cannot be read is
// left out of the scrape, and logged.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.inspector.Queues()
	if err != nil {
		c.log.Warn("reading the asynq queues for metrics", "err", err)
		return
	}
	for _, q := range queues {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			c.log.Warn("reading an asynq queue for metrics", "queue", q, "err", err)
			continue
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{q}, labels...)...)
		}
		for state, n := range map[string]int{
			"active": info.Active, "pending": info.Pending, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
		} {
			gauge(queueTasksDesc, float64(n), state)
		}
		gauge(queueSizeDesc, float64(info.Size))
		gauge(queueLatencyDesc, info.Latency.Seconds())
		gauge(queueMemoryDesc, float64(info.MemoryUsage))
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		gauge(queuePausedDesc, paused)
		ch <- prometheus.MustNewConstMetric(queueProcessedDesc, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(queueFailedDesc, prometheus.CounterValue, float64(info.FailedTotal), q)
	}
}
