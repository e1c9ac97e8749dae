// Package bench is orderflow's benchmark harness (`orderflow bench`, `make
// bench`). On one redis-server it measures the order pipeline with
// in-process, zero-latency providers against a baseline built the naive way
// on asynq (each handler enqueues the next task), then idle latency, API
// throughput, latency under a sustained load well below saturation, and
// worker scaling, and writes the tables to docs/PERFORMANCE.md.
//
// RunSoak (`orderflow bench --soak`) sends a steady load for a long time,
// kills a worker half way, and reports minute by minute: latency, the due
// index, the workers' memory, Redis's memory per order, and how soon the
// killed worker's orders resumed.
//
// The steady loads come from an open-loop driver: orders are started at a
// fixed rate whatever the system does, and each is timed from its scheduled
// start, so that a driver that falls behind cannot hide queueing.
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
	"slices"
	"strings"
	"sync"
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
	// Rounds splits the throughput comparison into alternating rounds of
	// the two modes. Default 5.
	Rounds int
	// ScalingLatency is the provider latency of the scaling runs, so that a
	// worker waits on its providers as real ones do. Default 5ms.
	ScalingLatency time.Duration
	// SustainedRate is the arrival rate of the sustained-load run, in
	// orders per second, sent by an open-loop driver. Default 300.
	SustainedRate float64
	// SustainedDuration is how long orders arrive at SustainedRate.
	// Default 60s.
	SustainedDuration time.Duration
	// SustainedWorkers is the number of worker processes of the
	// sustained-load run. Default 2.
	SustainedWorkers int
	// SustainedLatency is the provider latency of the sustained-load run.
	// Default 5ms.
	SustainedLatency time.Duration
	// WorkRate and WorkDuration shape the run that measures an order's own
	// work, with the sustained run's workers: orders at a tiny rate, so
	// one at a time. Defaults 5 orders/s and 10s.
	WorkRate     float64
	WorkDuration time.Duration
	// Interval is the length of a row of the sustained run's latency
	// table. Default 1m.
	Interval time.Duration
	// Settle is how long late tasks are let drain before an idle system is
	// measured. Default 2s.
	Settle time.Duration
	// WakeWorkers sets the engine's wake-path goroutines in the
	// sustained-load workers. Default 0: the engine's default.
	WakeWorkers int
	// Exe is the orderflow binary to run as workers and API. Default the
	// running executable.
	Exe string
	// Command is the command line, for the report.
	Command string
	// Log receives progress. Default stderr.
	Log io.Writer
	// ProfileDir, when set, makes every worker write a CPU profile there.
	ProfileDir string
	// Parts are the parts to run: PartMain (throughput against the chain,
	// idle latency, API, scaling), PartPriority, PartFlow. Default all.
	Parts []string
	// PriorityOrders is how many orders the priority run submits at once.
	// Default 3000.
	PriorityOrders int
	// FlowOrders is how many orders each flow-control run takes. Default
	// 5000.
	FlowOrders int
}

// The parts of a benchmark run, each written to its own section of the
// report.
const (
	PartMain     = "main"
	PartPriority = "priority"
	PartFlow     = "flow"
)

// Parts lists every part.
var Parts = []string{PartMain, PartPriority, PartFlow}

// runs reports whether part is to run.
func (c Config) runs(part string) bool { return slices.Contains(c.Parts, part) }

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	c.Orders = cmp.Or(c.Orders, 20000)
	c.Concurrency = cmp.Or(c.Concurrency, 20)
	c.Outstanding = cmp.Or(c.Outstanding, 10*c.Concurrency)
	c.IdleSamples = cmp.Or(c.IdleSamples, 50)
	c.IdleWindow = cmp.Or(c.IdleWindow, 5*time.Second)
	c.APIDuration = cmp.Or(c.APIDuration, 5*time.Second)
	c.APIConnections = cmp.Or(c.APIConnections, 32)
	c.Rounds = cmp.Or(c.Rounds, 5)
	c.ScalingLatency = cmp.Or(c.ScalingLatency, 5*time.Millisecond)
	c.SustainedRate = cmp.Or(c.SustainedRate, 300)
	c.SustainedDuration = cmp.Or(c.SustainedDuration, time.Minute)
	c.SustainedWorkers = cmp.Or(c.SustainedWorkers, 2)
	c.SustainedLatency = cmp.Or(c.SustainedLatency, 5*time.Millisecond)
	c.WorkRate = cmp.Or(c.WorkRate, 5)
	c.WorkDuration = cmp.Or(c.WorkDuration, 10*time.Second)
	c.Interval = cmp.Or(c.Interval, time.Minute)
	c.Settle = cmp.Or(c.Settle, 2*time.Second)
	if len(c.Scaling) == 0 {
		c.Scaling = []int{1, 2, 4}
	}
	if len(c.Parts) == 0 {
		c.Parts = Parts
	}
	c.PriorityOrders = cmp.Or(c.PriorityOrders, 3000)
	c.FlowOrders = cmp.Or(c.FlowOrders, 5000)
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
	// cluster, when set, is the Redis Cluster the run uses instead of
	// redisURL.
	cluster  *redisserver.Cluster
	rdb      redis.UniversalClient
	redis    *redisserver.Server
	profiles int
}

// redisArgs are the Redis flags of the processes the harness starts.
func (h *harness) redisArgs() []string {
	if h.cluster != nil {
		return []string{"--redis-cluster", h.cluster.Seeds()}
	}
	return []string{"--redis-url", h.redisURL}
}

// open opens a client of the run's Redis with a pool of poolSize.
func (h *harness) open(poolSize int) (*server.RedisConn, error) {
	if h.cluster != nil {
		return server.RedisConfig{Cluster: h.cluster.Seeds(), PoolSize: poolSize}.Open()
	}
	return server.OpenRedis(h.redisURL, poolSize)
}

// newHarness starts the run's redis-server (unless cfg names a Redis) and
// connects to it; shutdown stops it.
func newHarness(cfg Config) (h *harness, shutdown func(), err error) {
	h = &harness{cfg: cfg, redisURL: cfg.RedisURL}
	var cleanup []func()
	shutdown = func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	if h.redisURL == "" {
		dir, err := os.MkdirTemp("", "orderflow-bench-")
		if err != nil {
			return nil, nil, err
		}
		cleanup = append(cleanup, func() { _ = os.RemoveAll(dir) })
		if h.redis, err = redisserver.Start(redisserver.Options{Dir: dir}); err != nil {
			shutdown()
			return nil, nil, err
		}
		cleanup = append(cleanup, h.redis.Stop)
		h.redisURL = h.redis.URL()
	}
	conn, err := h.open(20)
	if err != nil {
		shutdown()
		return nil, nil, err
	}
	cleanup = append(cleanup, func() { _ = conn.Close() })
	h.rdb = conn.Client
	return h, shutdown, nil
}

// Run runs every measurement and returns the results.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg = cfg.WithDefaults()
	h, closeHarness, err := newHarness(cfg)
	if err != nil {
		return nil, err
	}
	defer closeHarness()
	res := &Results{Config: cfg, Machine: describeMachine(ctx, h.rdb), Date: time.Now().UTC()}

	if cfg.runs(PartMain) {
		if err := h.main(ctx, res); err != nil {
			return nil, err
		}
	}
	if cfg.runs(PartPriority) {
		h.logf("priorities: %d orders at once, a third of each priority, one worker, providers answering in %s", cfg.PriorityOrders, cfg.ScalingLatency)
		r, err := h.priority(ctx)
		if err != nil {
			return nil, fmt.Errorf("priorities: %w", err)
		}
		res.Priority = &r
	}
	if cfg.runs(PartFlow) {
		r, err := h.flowCost(ctx)
		if err != nil {
			return nil, fmt.Errorf("flow control cost: %w", err)
		}
		res.Flow = &r
	}
	return res, nil
}

// main runs the main part: throughput against the chain, idle latency, API
// throughput and worker scaling.
func (h *harness) main(ctx context.Context, res *Results) error {
	cfg := h.cfg
	var err error
	// The machine is noisy: run the two modes in alternating rounds and
	// compare each round's pair, so that a slow spell hits both.
	per := cfg.Orders / cfg.Rounds
	var bls, ofs, v2s []ThroughputResult
	for round := range cfg.Rounds {
		for _, mode := range []string{ModeBaseline, ModeOrderflow, ModeOrderflowV2} {
			h.logf("throughput round %d/%d: %s, %d orders, 1 worker × %d", round+1, cfg.Rounds, mode, per, cfg.Concurrency)
			r, err := h.throughput(ctx, mode, 1, per, 0)
			if err != nil {
				return fmt.Errorf("%s throughput: %w", mode, err)
			}
			switch mode {
			case ModeBaseline:
				bls = append(bls, r)
			case ModeOrderflow:
				ofs = append(ofs, r)
			default:
				v2s = append(v2s, r)
			}
		}
		res.RoundRatios = append(res.RoundRatios, ofs[round].OrdersPerSec/bls[round].OrdersPerSec)
	}
	res.Baseline, res.Orderflow, res.OrderflowV2 = combine(bls), combine(ofs), combine(v2s)
	h.logf("idle latency: %d orders one at a time, asynq polling only", cfg.IdleSamples)
	if res.IdlePolling, err = h.idle(ctx, false); err != nil {
		return fmt.Errorf("idle latency: %w", err)
	}
	h.logf("idle latency: %d orders one at a time, with the wake fast path", cfg.IdleSamples)
	if res.Idle, err = h.idle(ctx, true); err != nil {
		return fmt.Errorf("idle latency: %w", err)
	}
	h.logf("API: POST /v1/orders for %s with %d connections", cfg.APIDuration, cfg.APIConnections)
	if res.API, err = h.apiLoad(ctx); err != nil {
		return fmt.Errorf("API load: %w", err)
	}
	h.logf("sustained load: %.0f orders/s for %s, %d worker processes, providers answering in %s",
		cfg.SustainedRate, cfg.SustainedDuration, cfg.SustainedWorkers, cfg.SustainedLatency)
	if res.Sustained, err = h.sustained(ctx); err != nil {
		return fmt.Errorf("sustained load: %w", err)
	}
	for _, n := range cfg.Scaling {
		h.logf("scaling: %d worker processes, providers answering in %s", n, cfg.ScalingLatency)
		r, err := h.throughput(ctx, ModeOrderflow, n, cfg.Orders/2, cfg.ScalingLatency)
		if err != nil {
			return fmt.Errorf("scaling %d: %w", n, err)
		}
		res.Scaling = append(res.Scaling, r)
	}
	res.Main = true
	return nil
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Log, "bench: "+format+"\n", args...)
}

// flush empties Redis and its statistics between runs.
func (h *harness) flush(ctx context.Context) error {
	if err := flushAll(ctx, h.rdb); err != nil {
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
	// Nodes are the figures of each Redis node (master) of the run.
	Nodes []NodeResult
}

// NodeResult is one Redis node's share of a throughput run.
type NodeResult struct {
	// Addr is the node's address ("" for a single Redis).
	Addr string
	// CPUMicros is the node's CPU time per order, in µs (INFO cpu).
	CPUMicros float64
	// Commands is the node's commands per order.
	Commands float64
}

// perNode turns two samples of the nodes into per-order figures, in
// address order.
func perNode(before, after map[string]nodeSample, orders int) []NodeResult {
	var out []NodeResult
	for addr, a := range after {
		b := before[addr]
		out = append(out, NodeResult{Addr: addr, CPUMicros: (a.cpu - b.cpu) / float64(orders) * 1e6,
			Commands: float64(a.commands-b.commands) / float64(orders)})
	}
	slices.SortFunc(out, func(x, y NodeResult) int { return strings.Compare(x.Addr, y.Addr) })
	return out
}

// throughput runs n orders of mode through workers worker processes whose
// providers answer after latency; flowArgs are the workers' flow-control
// flags.
func (h *harness) throughput(ctx context.Context, mode string, workers, n int, latency time.Duration, flowArgs ...string) (ThroughputResult, error) {
	if err := h.flush(ctx); err != nil {
		return ThroughputResult{}, err
	}
	// Memory is read with no worker connected, before and after, so that
	// the workers' connection buffers do not count as order data.
	memBefore, err := usedMemory(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	procs, err := h.startWorkers(workers, WorkerOptions{Mode: mode, Concurrency: h.cfg.Concurrency,
		Wake: true, ProviderLatency: latency, FlowArgs: flowArgs})
	if err != nil {
		return ThroughputResult{}, err
	}
	defer stopAll(procs)
	sub, closeSub, err := h.submitter(mode, h.cfg.Outstanding*workers)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer closeSub()
	cpuBefore := make([]float64, len(procs))
	for i, p := range procs {
		cpuBefore[i], _ = cpuSeconds(p.Pid())
	}
	if err := resetStats(ctx, h.rdb); err != nil {
		return ThroughputResult{}, err
	}
	redisBefore, _ := redisCPU(ctx, h.rdb)
	readsBefore, _ := redisReads(ctx, h.rdb)
	nodesBefore, _ := sampleNodes(ctx, h.rdb)
	selfBefore := selfCPU()
	stopProfile := h.profileSelf(mode)
	lr, err := runLoad(ctx, h.rdb, sub, mode, n, h.cfg.Outstanding*workers)
	stopProfile()
	selfAfter := selfCPU()
	redisAfter, _ := redisCPU(ctx, h.rdb)
	readsAfter, _ := redisReads(ctx, h.rdb)
	nodesAfter, _ := sampleNodes(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	stats, err := readCommandStats(ctx, h.rdb)
	if err != nil {
		return ThroughputResult{}, err
	}
	var cpu float64
	for i, p := range procs {
		after, _ := cpuSeconds(p.Pid())
		cpu += after - cpuBefore[i]
	}
	stopAll(procs)
	closeSub()
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
		Nodes:          perNode(nodesBefore, nodesAfter, n),
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

// submitter returns the client that places orders in mode, on a connection
// pool of its own sized for outstanding orders; the returned func closes it,
// so that its connections' buffers do not count as order data.
func (h *harness) submitter(mode string, outstanding int) (submitter, func(), error) {
	conn, err := h.open(outstanding + 10)
	if err != nil {
		return nil, nil, err
	}
	rdb := conn.Client
	switch mode {
	case ModeOrderflow, ModeOrderflowV2:
		store := statemachine.NewStore(rdb, statemachine.StoreConfig{})
		reg := statemachine.NewOrderRegistry()
		if mode == ModeOrderflowV2 {
			_ = reg.SetDefault(statemachine.OrderWorkflow, 2)
		}
		eng, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store,
			reg, nil, tasks.NewQueue(rdb, tasks.QueueConfig{}), nil)
		if err != nil {
			store.Close()
			_ = conn.Close()
			return nil, nil, err
		}
		in, _ := json.Marshal(benchInput)
		return &orderflowSubmitter{eng: eng, input: in}, sync.OnceFunc(func() { store.Close(); _ = conn.Close() }), nil
	default:
		var items []providers.Item
		for _, it := range benchInput.Items {
			items = append(items, providers.Item{SKU: it.SKU, Qty: int(it.Qty)})
		}
		c := asynq.NewClientFromRedisClient(rdb)
		return &baselineSubmitter{client: c, payload: chainPayload{
			CustomerID: benchInput.CustomerID, Currency: benchInput.Currency, AmountCents: benchInput.AmountCents, Items: items,
		}}, sync.OnceFunc(func() { _ = c.Close(); _ = conn.Close() }), nil
	}
}

// combine merges the rounds of one mode: rates from the totals, latencies
// and per-order figures as the mean of the rounds.
func combine(rs []ThroughputResult) ThroughputResult {
	out := rs[0]
	var orders int
	var wall float64
	var p50, p99 time.Duration
	out.CommandsPerOrd, out.ReadsPerOrder, out.BytesPerOrder = 0, 0, 0
	out.CPUPer1000, out.RedisCPU1000, out.DriverCPU1000 = 0, 0, 0
	for _, r := range rs {
		orders += r.Orders
		wall += float64(r.Orders) / r.OrdersPerSec
		p50 += r.P50
		p99 += r.P99
		out.CommandsPerOrd += r.CommandsPerOrd
		out.ReadsPerOrder += r.ReadsPerOrder
		out.BytesPerOrder += r.BytesPerOrder
		out.CPUPer1000 += r.CPUPer1000
		out.RedisCPU1000 += r.RedisCPU1000
		out.DriverCPU1000 += r.DriverCPU1000
	}
	n := float64(len(rs))
	out.Orders = orders
	out.OrdersPerSec = float64(orders) / wall
	out.P50, out.P99 = p50/time.Duration(len(rs)), p99/time.Duration(len(rs))
	out.CommandsPerOrd /= n
	out.ReadsPerOrder /= n
	out.BytesPerOrder /= n
	out.CPUPer1000 /= n
	out.RedisCPU1000 /= n
	out.DriverCPU1000 /= n
	return out
}
