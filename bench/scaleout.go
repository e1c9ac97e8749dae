package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/orderflow/orderflow/internal/redisserver"
	"github.com/orderflow/orderflow/server"
)

// ScaleOutConfig configures RunScaleOut. Every field's comment gives its
// default.
type ScaleOutConfig struct {
	// Orders per run. Default 6000.
	Orders int
	// Workers lists the worker process counts to run on each topology.
	// Default 1, 2, 4.
	Workers []int
	// Concurrency of each worker process. Default 20.
	Concurrency int
	// ProviderLatency is how long each provider call takes, so that a
	// worker waits on its providers as real ones do. Default 5ms.
	ProviderLatency time.Duration
	// Exe is the orderflow binary to run as workers. Default the running
	// executable.
	Exe string
	// Command is the command line, for the report.
	Command string
	// Log receives progress. Default stderr.
	Log io.Writer
}

// WithDefaults returns the config with its zero fields set.
func (c ScaleOutConfig) WithDefaults() ScaleOutConfig {
	c.Orders = cmp.Or(c.Orders, 6000)
	if len(c.Workers) == 0 {
		c.Workers = []int{1, 2, 4}
	}
	c.Concurrency = cmp.Or(c.Concurrency, 20)
	c.ProviderLatency = cmp.Or(c.ProviderLatency, 5*time.Millisecond)
	if c.Exe == "" {
		c.Exe, _ = os.Executable()
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// ScaleOutResults are the runs of RunScaleOut: each worker count on one
// redis-server, then on a 3-master Redis Cluster.
type ScaleOutResults struct {
	Config  ScaleOutConfig
	Machine string
	Date    time.Time
	Single  []ThroughputResult
	Cluster []ThroughputResult
}

// RunScaleOut measures the order pipeline with 1, 2 and 4 worker processes
// (ScaleOutConfig.Workers) on one redis-server and on a 3-master Redis
// Cluster it starts (redis-cli --cluster create), with the same closed-loop
// driver: throughput, latency, commands and bytes per order, and the CPU
// each Redis node spends per order (INFO cpu of every master).
func RunScaleOut(ctx context.Context, cfg ScaleOutConfig) (*ScaleOutResults, error) {
	cfg = cfg.WithDefaults()
	res := &ScaleOutResults{Config: cfg, Date: time.Now().UTC()}
	for _, cluster := range []bool{false, true} {
		h, shutdown, err := newScaleOutHarness(cfg, cluster)
		if err != nil {
			return nil, err
		}
		if res.Machine == "" {
			res.Machine = describeMachine(ctx, h.rdb)
		}
		for _, n := range cfg.Workers {
			topology := "one redis-server"
			if cluster {
				topology = "a 3-master cluster"
			}
			h.logf("scale-out: %d worker processes on %s, %d orders, providers answering in %s", n, topology, cfg.Orders, cfg.ProviderLatency)
			r, err := h.throughput(ctx, ModeOrderflow, n, cfg.Orders, cfg.ProviderLatency)
			if err != nil {
				shutdown()
				return nil, fmt.Errorf("%d workers on %s: %w", n, topology, err)
			}
			if cluster {
				res.Cluster = append(res.Cluster, r)
			} else {
				res.Single = append(res.Single, r)
			}
		}
		shutdown()
	}
	return res, nil
}

// newScaleOutHarness starts a redis-server, or a 3-master cluster, for a
// scale-out run; shutdown stops it.
func newScaleOutHarness(cfg ScaleOutConfig, cluster bool) (*harness, func(), error) {
	bc := Config{Concurrency: cfg.Concurrency, Exe: cfg.Exe, Log: cfg.Log}.WithDefaults()
	if !cluster {
		return newHarness(bc)
	}
	dir, err := os.MkdirTemp("", "orderflow-bench-cluster-")
	if err != nil {
		return nil, nil, err
	}
	c, err := redisserver.StartCluster(redisserver.ClusterOptions{Dir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	h := &harness{cfg: bc, cluster: c}
	conn, err := server.RedisConfig{Cluster: c.Seeds(), PoolSize: 20}.Open()
	if err != nil {
		c.Stop()
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	h.rdb = conn.Client
	return h, func() { _ = conn.Close(); c.Stop(); _ = os.RemoveAll(dir) }, nil
}

// Markdown renders the results.
func (r *ScaleOutResults) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	c := r.Config
	w("Measured %s on %s.", r.Date.Format("2006-01-02 15:04 MST"), r.Machine)
	w("")
	w("Command: `%s`", c.Command)
	w("")
	w("%d orders per run, workflow v1, in-process providers answering in %s, worker processes of concurrency %d, a closed-loop driver keeping %d orders in flight per worker. "+
		"The cluster has 3 masters and no replicas, on the same machine; the indexes are split into 16 shards there, 1 on the single server.",
		c.Orders, c.ProviderLatency, c.Concurrency, 10*c.Concurrency)
	w("")
	w("| Redis | workers | orders/s | × 1 worker | p50 | p99 | commands/order | round trips/order | bytes/order | worker CPU µs/order | Redis CPU µs/order | per node: CPU µs/order (commands/order) |")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, run := range []struct {
		name string
		rs   []ThroughputResult
	}{{"one server", r.Single}, {"3-master cluster", r.Cluster}} {
		for _, t := range run.rs {
			scale := t.OrdersPerSec / run.rs[0].OrdersPerSec
			var nodes []string
			for _, n := range t.Nodes {
				if n.Addr == "" {
					nodes = append(nodes, fmt.Sprintf("%.0f (%.1f)", n.CPUMicros, n.Commands))
				} else {
					nodes = append(nodes, fmt.Sprintf("%s: %.0f (%.1f)", n.Addr[strings.LastIndexByte(n.Addr, ':')+1:], n.CPUMicros, n.Commands))
				}
			}
			w("| %s | %d | %.0f | %.2f× | %s | %s | %.1f | %.1f | %.0f | %.0f | %.0f | %s |", run.name, t.Workers, t.OrdersPerSec, scale,
				t.P50.Round(time.Millisecond), t.P99.Round(time.Millisecond), t.CommandsPerOrd, t.ReadsPerOrder, t.BytesPerOrder,
				t.CPUPer1000*1000, t.RedisCPU1000*1000, strings.Join(nodes, ", "))
		}
	}
	w("")
	w("Everything here shares %d cores: the driver, the worker processes and every Redis node. "+
		"A worker count above the cores adds no CPU, so past 2 workers the rows measure how the same cores are shared, not how far the system scales; "+
		"a cluster on one machine adds network hops and processes without adding cores, so it is slower here than one server. "+
		"What carries over to a real deployment is the per-order cost in each column: Redis CPU per order on each node, commands and bytes per order, worker CPU per order (see docs/DEPLOYMENT.md).",
		runtime.NumCPU())
	return b.String()
}

// Markers of the scale-out section of docs/PERFORMANCE.md.
const (
	scaleOutBeginMarker = "<!-- bench-scaleout:begin -->"
	scaleOutEndMarker   = "<!-- bench-scaleout:end -->"
)

// WriteDoc writes the results between the scale-out markers of the file at
// path.
func (r *ScaleOutResults) WriteDoc(path string) error {
	return writeSection(path, scaleOutBeginMarker, scaleOutEndMarker, "## Scale-out: workers, and a Redis Cluster", r.Markdown())
}
