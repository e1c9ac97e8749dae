// Package bench is orderflow's benchmark harness (`orderflow bench`, `make
// bench`). On one redis-server it measures the order pipeline with
// in-process, zero-latency providers against a baseline built the naive way
// on asynq (each handler enqueues the next task), then idle latency, API
// throughput and worker scaling, and writes the table to docs/PERFORMANCE.md.
//
// Workers run as their own processes (`orderflow bench-worker`), so that
// their CPU time can be read from /proc and several can share one Redis.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redisserver"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// Config configures a benchmark run. Every field's comment gives its
// default.
type Config struct {
	// RedisURL is the Redis to use; it is flushed. Empty: the harness
	// starts its own redis-server on a free port.
	RedisURL string
	// Orders per throughput run. Default 20000.
	Orders int
	// Concurrency of each worker process. Default 20.
	Concurrency int
	// Outstanding is how many orders the closed-loop driver keeps in flight
	// per worker. Default 10 × Concurrency, so that the queues never run dry.
	Outstanding int
	// IdleSamples is the number of one-at-a-time orders. Default 50.
	IdleSamples int
	// IdleWindow is how long idle Redis load is measured. Default 5s.
	IdleWindow time.Duration
	// APIDuration and APIConnections shape the POST /v1/orders load.
	// Defaults 5s and 32.
	APIDuration    time.Duration
	APIConnections int
	// Scaling lists the worker process counts to run. Default 1, 2, 4.
	Scaling []int
	// Exe is the orderflow binary to run as workers and API. Default the
	// running executable.
	Exe string
	// Command is the command line, for the report.
	Command string
	// Log receives progress. Default stderr.
	Log io.Writer
	// ProfileDir, when set, makes every worker write a CPU profile there.
	ProfileDir string
}

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	c.Orders = cmp.Or(c.Orders, 20000)
	c.Concurrency = cmp.Or(c.Concurrency, 20)
	c.Outstanding = cmp.Or(c.Outstanding, 10*c.Concurrency)
	c.IdleSamples = cmp.Or(c.IdleSamples, 50)
	c.IdleWindow = cmp.Or(c.IdleWindow, 5*time.Second)
	c.APIDuration = cmp.Or(c.APIDuration, 5*time.Second)
	c.APIConnections = cmp.Or(c.APIConnections, 32)
	if len(c.Scaling) == 0 {
		c.Scaling = []int{1, 2, 4}
	}
	if c.Exe == "" {
		c.Exe, _ = os.Executable()
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// harness is one benchmark run.
type harness struct {
	cfg      Config
	redisURL string
	rdb      redis.UniversalClient
	redis    *redisserver.Server
	profiles int
}

// Run runs every measurement and returns the results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg = cfg.WithDefaults()
	h := &harness{cfg: cfg, redisURL: cfg.RedisURL}
	if h.redisURL == "" {
		dir, err := os.MkdirTemp("", "orderflow-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if h.redis, err = redisserver.Start(redisserver.Options{Dir: dir}); err != nil {
			return nil, err
		}
		defer h.redis.Stop()
		h.redisURL = h.redis.URL()
	}
	conn, err := server.OpenRedis(h.redisURL, 4*cfg.Outstanding+50)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	h.rdb = conn.Client
	res := &Results{Config: cfg, Machine: describeMachine(ctx, h.rdb), Date: time.Now().UTC()}

	for _, mode := range []string{ModeBaseline, ModeOrderflow} {
		h.logf("throughput: %s, %d orders, 1 worker × %d", mode, cfg.Orders, cfg.Concurrency)
		r, err := h.throughput(ctx, mode, 1, cfg.Orders)
		if err != nil {
			return nil, fmt.Errorf("%s throughput: %w", mode, err)
		}
		if mode == ModeBaseline {
			res.Baseline = r
		} else {
			res.Orderflow = r
		}
	}
	h.logf("idle latency: %d orders one at a time, asynq polling only", cfg.IdleSamples)
	if res.IdlePolling, err = h.idle(ctx, false); err != nil {
		return nil, fmt.Errorf("idle latency: %w", err)
	}
	h.logf("idle latency: %d orders one at a time, with the wake fast path", cfg.IdleSamples)
	if res.Idle, err = h.idle(ctx, true); err != nil {
		return nil, fmt.Errorf("idle latency: %w", err)
	}
	h.logf("API: POST /v1/orders for %s with %d connections", cfg.APIDuration, cfg.APIConnections)
	if res.API, err = h.apiLoad(ctx); err != nil {
		return nil, fmt.Errorf("API load: %w", err)
	}
	for _, n := range cfg.Scaling {
		h.logf("scaling: %d worker processes", n)
		r, err := h.throughput(ctx, ModeOrderflow, n, cfg.Orders)
		if err != nil {
			return nil, fmt.Errorf("scaling %d: %w", n, err)
		}
		res.Scaling = append(res.Scaling, r)
	}
	return res, nil
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Log, "bench: "+format+"\n", args...)
}

// flush empties Redis and its statistics between runs.
func (h *harness) flush(ctx context.Context) error {
	if err := h.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	return resetStats(ctx, h.rdb)
}

// ThroughputResult is one closed-loop run.
type ThroughputResult struct {
	Mode           string
	Workers        int
	Orders         int
	OrdersPerSec   float64
	P50, P99       time.Duration
	CommandsPerOrd float64
	BytesPerOrder  float64
	CPUPer1000     float64 // worker CPU seconds per 1,000 orders
	RedisCPU1000   float64 // Redis CPU seconds per 1,000 orders
	ReadsPerOrder  float64 // Redis reads (about one per round trip) per order
	DriverCPU1000  float64 // the submitting client's CPU seconds per 1,000 orders
	TopCommands    []string
}

// throughput runs n orders of mode through workers worker processes.
func (h *harness) throughput(ctx context.Context, mode string, workers, n int) (ThroughputResult, error) {
	if err := h.flush(ctx); err != nil {
		return ThroughputResult{}, err
	}
	procs, err := h.startWorkers(workers, WorkerOptions{Mode: mode, RedisURL: h.redisURL, Concurrency: h.cfg.Concurrency,
		TaskCheckInterval: 100 * time.Millisecond, Wake: true})
	if err != nil {
		return ThroughputResult{}, err
	}
	defer stopAll(procs)
	sub, closeSub, err := h.submitter(mode)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer closeSub()
	memBefore, err := usedMemory(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	cpuBefore := make([]float64, len(procs))
	for i, p := range procs {
		cpuBefore[i], _ = cpuSeconds(p.pid())
	}
	if err := resetStats(ctx, h.rdb); err != nil {
		return ThroughputResult{}, err
	}
	redisBefore, _ := redisCPU(ctx, h.rdb)
	readsBefore, _ := redisReads(ctx, h.rdb)
	selfBefore := selfCPU()
	stopProfile := h.profileSelf(mode)
	lr, err := runLoad(ctx, h.rdb, sub, mode, n, h.cfg.Outstanding*workers)
	stopProfile()
	selfAfter := selfCPU()
	redisAfter, _ := redisCPU(ctx, h.rdb)
	readsAfter, _ := redisReads(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	stats, err := readCommandStats(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	var cpu float64
	for i, p := range procs {
		after, _ := cpuSeconds(p.pid())
		cpu += after - cpuBefore[i]
	}
	memAfter, err := usedMemory(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	r := ThroughputResult{
		Mode: mode, Workers: workers, Orders: n, OrdersPerSec: lr.perSecond(),
		P50: percentile(lr.latencies, 50), P99: percentile(lr.latencies, 99),
		CommandsPerOrd: float64(stats.total()) / float64(n),
		BytesPerOrder:  float64(memAfter-memBefore) / float64(n),
		CPUPer1000:     cpu / float64(n) * 1000,
		RedisCPU1000:   (redisAfter - redisBefore) / float64(n) * 1000,
		ReadsPerOrder:  float64(readsAfter-readsBefore) / float64(n),
		DriverCPU1000:  (selfAfter - selfBefore) / float64(n) * 1000,
		TopCommands:    stats.top(8),
	}
	h.logf("  %.0f orders/s, p50 %s, p99 %s, %.1f commands/order, %.1f round trips/order, %.0f bytes/order, CPU s/1000 orders: worker %.3f, redis %.3f, driver %.3f",
		r.OrdersPerSec, r.P50, r.P99, r.CommandsPerOrd, r.ReadsPerOrder, r.BytesPerOrder, r.CPUPer1000, r.RedisCPU1000, r.DriverCPU1000)
	return r, nil
}

// profileSelf profiles the harness itself (the submitting client) when
// ProfileDir is set; the returned func stops it.
func (h *harness) profileSelf(mode string) func() {
	if h.cfg.ProfileDir == "" {
		return func() {}
	}
	h.profiles++
	f, err := os.Create(fmt.Sprintf("%s/driver-%s-%d.pprof", h.cfg.ProfileDir, mode, h.profiles))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// benchInput is the order every run submits.
var benchInput = orders.Input{
	CustomerID: "cust-42", Currency: "USD", AmountCents: 4998,
	Items: []orders.Item{{SKU: "SKU-ABC", Qty: 2, UnitPriceCents: 2499}},
}

func (h *harness) submitter(mode string) (submitter, func(), error) {
	switch mode {
	case ModeOrderflow:
		store := statemachine.NewStore(h.rdb, statemachine.StoreConfig{})
		eng, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store,
			statemachine.NewOrderRegistry(), nil, tasks.NewQueue(h.rdb, tasks.QueueConfig{}), nil)
		if err != nil {
			return nil, nil, err
		}
		in, _ := json.Marshal(benchInput)
		return &orderflowSubmitter{eng: eng, input: in}, store.Close, nil
	default:
		var items []providers.Item
		for _, it := range benchInput.Items {
			items = append(items, providers.Item{SKU: it.SKU, Qty: int(it.Qty)})
		}
		c := asynq.NewClientFromRedisClient(h.rdb)
		return &baselineSubmitter{client: c, payload: chainPayload{
			CustomerID: benchInput.CustomerID, Currency: benchInput.Currency, AmountCents: benchInput.AmountCents, Items: items,
		}}, func() { _ = c.Close() }, nil
	}
}
