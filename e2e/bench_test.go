package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// commandCount sums the calls in INFO commandstats.
func commandCount(t testing.TB, c redis.UniversalClient) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		_, rest, _ := strings.Cut(line, ":calls=")
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		total += n
	}
	return total
}

// BenchmarkOrderPipeline runs b.N orders of the 3-step pipeline on a real
// redis-server with in-process, zero-latency providers and one worker:
// the orders are submitted first, then the worker drains them. It reports
// orders/s and Redis commands per order (submission included). `make bench`
// runs the full harness with the raw asynq baseline beside it.
func BenchmarkOrderPipeline(b *testing.B) {
	r := redistest.New(b, redistest.BackendRedis)
	conn, err := server.OpenRedis(r.URL, 100)
	require.NoError(b, err)
	defer conn.Close()
	store := statemachine.NewStore(conn.Client, statemachine.StoreConfig{})
	defer store.Close()
	starter, err := engine.New(engine.Config{}, store, statemachine.NewOrderRegistry(), nil, tasks.NewQueue(conn.Client, tasks.QueueConfig{}), nil)
	require.NoError(b, err)

	input, _ := json.Marshal(orders.Input{CustomerID: "c", Currency: "USD", AmountCents: 4998,
		Items: []orders.Item{{SKU: "SKU-ABC", Qty: 2, UnitPriceCents: 2499}}})
	before := commandCount(b, conn.Client)
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		_, err := starter.Start(context.Background(), engine.StartRequest{
			ID: fmt.Sprintf("bench-%d", i), Workflow: statemachine.OrderWorkflow, Input: input, Fingerprint: "f",
		})
		require.NoError(b, err)
	}
	reg := prometheus.NewRegistry()
	w, err := server.NewWorker(conn.Client, providers.NewInProcess().Set(), server.WorkerConfig{
		Concurrency: 20, Logger: testLogger(b),
	}, reg)
	require.NoError(b, err)
	b.StartTimer()
	start := time.Now()
	require.NoError(b, w.Start())
	finished := func() float64 {
		mfs, _ := reg.Gather()
		var n float64
		for _, mf := range mfs {
			if mf.GetName() == "orderflow_instances_finished_total" {
				for _, m := range mf.GetMetric() {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}
	for finished() < float64(b.N) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	w.Shutdown()
	cmds := commandCount(b, conn.Client) - before
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
	b.ReportMetric(float64(cmds)/float64(b.N), "redis-cmds/order")
}
