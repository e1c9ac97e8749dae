package bench_test

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/bench"
	"github.com/orderflow/orderflow/cli"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/internal/syncbuf"
)

// childEnv marks a copy of this test binary started by the harness as one
// of its processes (a bench worker, the API).
const childEnv = "ORDERFLOW_BENCH_TEST_CHILD"

// TestMain lets the harness run this test binary as its workers and API:
// building cmd/orderflow inside the test cost a second compile of every
// dependency, most of the package's test time on a cold cache.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	_ = os.Setenv(childEnv, "1")
	// A race-enabled process sleeps a second at exit (GORACE
	// atexit_sleep_ms) for late reports; the harness stops a dozen.
	_ = os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// TestRunSmoke runs the whole harness at a tiny scale, so that `make bench`
// keeps working. It checks that every figure is there and sane, never how
// fast anything was.
func TestRunSmoke(t *testing.T) {
	t.Parallel()
	redistest.RequireBinary(t)
	var log syncbuf.Buffer
	res, err := bench.Run(context.Background(), bench.Config{
		Orders: 200, Rounds: 1, Concurrency: 4, IdleSamples: 3, IdleWindow: 200 * time.Millisecond, Settle: 200 * time.Millisecond,
		APIDuration: 200 * time.Millisecond, APIConnections: 4, Scaling: []int{1}, ScalingLatency: time.Millisecond,
		SustainedRate: 50, SustainedDuration: 2 * time.Second, SustainedWorkers: 2, SustainedLatency: time.Millisecond,
		WorkRate: 10, WorkDuration: time.Second, Interval: time.Second,
		PriorityOrders: 60, FlowOrders: 100, Command: "test", Log: &log,
	})
	require.NoError(t, err, "log: %s", log.String())
	require.Positive(t, res.Baseline.OrdersPerSec)
	require.Positive(t, res.Orderflow.OrdersPerSec)
	require.Positive(t, res.Orderflow.CommandsPerOrd)
	require.Equal(t, 3, res.Idle.Samples)
	require.Positive(t, res.API.Requests)
	require.Len(t, res.Scaling, 1)
	require.Len(t, res.Priority.ByPriority, 3)
	for _, p := range res.Priority.ByPriority {
		require.Equal(t, 20, p.Orders)
		require.Positive(t, p.P50)
	}
	require.Len(t, res.Flow.Runs, 4)
	none, all := res.Flow.Runs[0].Result, res.Flow.Runs[3].Result
	require.Greater(t, all.CommandsPerOrd, none.CommandsPerOrd, "flow control costs commands")

	su := res.Sustained
	require.Equal(t, 10, su.Work.Orders)
	require.Equal(t, 100, su.Load.Orders)
	require.Zero(t, su.Load.Unfinished)
	require.Zero(t, su.Errors)
	require.Len(t, su.Rows, 2)
	require.Equal(t, 100, su.Rows[0].Orders+su.Rows[1].Orders)
	for _, r := range append(su.Rows, su.Work, su.Load) {
		requireOrdered(t, r)
	}
	require.Len(t, su.Phases, 5)
	require.Positive(t, su.Phases[3].P50, "the steps take time")
	require.Positive(t, su.IdleCommandsPerWorker)
	require.Positive(t, su.LoadCPU.Workers)
	require.GreaterOrEqual(t, su.LoadCPU.Machine, su.LoadCPU.Steal)

	md := res.Markdown()
	require.Contains(t, md, "### Sustained load")
	require.Contains(t, md, "p99 ≤ 4 × the order's own work")

	// The results go between the markers; what is outside them stays.
	doc := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	require.NoError(t, os.WriteFile(doc, []byte("# Perf\n\nkept above\n"), 0o644))
	require.NoError(t, res.WriteDoc(doc))
	require.NoError(t, os.WriteFile(doc, append(mustRead(t, doc), []byte("\nkept below\n")...), 0o644))
	require.NoError(t, res.WriteDoc(doc))
	got := string(mustRead(t, doc))
	require.Contains(t, got, "kept above")
	require.Contains(t, got, "kept below")
	require.Equal(t, 1, strings.Count(got, "### Targets"))
	require.Equal(t, 1, strings.Count(got, "### Priorities under a backlog"))
	require.Equal(t, 1, strings.Count(got, "### What flow control costs"))
}

// TestSoakSmoke runs a soak of a few seconds, with a worker killed half way.
func TestSoakSmoke(t *testing.T) {
	t.Parallel()
	redistest.RequireBinary(t)
	var log syncbuf.Buffer
	// Slow providers keep orders in flight, so that the killed worker
	// likely holds some.
	res, err := bench.RunSoak(context.Background(), bench.SoakConfig{
		Rate: 40, Duration: 3 * time.Second, Workers: 2, Concurrency: 4, ProviderLatency: 30 * time.Millisecond,
		Lease: time.Second, ReaperInterval: 200 * time.Millisecond, Interval: time.Second, SampleEvery: 200 * time.Millisecond,
		Drain: 30 * time.Second, Command: "test", Log: &log,
	})
	require.NoError(t, err, "log: %s", log.String())
	require.Equal(t, 120, res.Orders)
	require.Zero(t, res.Errors)
	require.Zero(t, res.Latency.Unfinished, "every order finishes, the killed worker's too")
	requireOrdered(t, res.Latency)
	require.Len(t, res.Rows, 3)
	for _, r := range res.Rows {
		requireOrdered(t, r.LatencyRow)
		require.Len(t, r.RSS, 2)
		for _, rss := range r.RSS {
			require.Positive(t, rss)
		}
	}
	// Redis bytes per order are not checked: over a hundred orders, the
	// killed worker's connection buffers outweigh the orders.

	k := res.Kill
	require.Equal(t, "soak-w1", k.Worker)
	require.Equal(t, "soak-w3", k.Replacement)
	require.Equal(t, []string{"soak-w1 → soak-w3", "soak-w2"}, res.Slots)
	require.Equal(t, []int{1}, res.Survivors)
	require.Equal(t, k.Held, k.Resumed, "every order the killed worker held moves on")
	if k.Held > 0 {
		require.Positive(t, k.P50)
		require.LessOrEqual(t, k.P50, k.Max)
	}
	require.Len(t, res.Checks(), 6)
	require.Positive(t, res.CPU.Machine)

	md := res.Markdown()
	require.Contains(t, md, "| pass criterion |")
	require.Contains(t, md, "SIGKILLed")

	// The soak has markers of its own: the bench section stays.
	doc := filepath.Join(t.TempDir(), "PERFORMANCE.md")
	benchSection := "<!-- bench:begin (generated by `orderflow bench`; edit outside these markers) -->\nbench figures\n<!-- bench:end -->\n"
	require.NoError(t, os.WriteFile(doc, []byte("# Perf\n\n"+benchSection), 0o644))
	require.NoError(t, res.WriteDoc(doc))
	require.NoError(t, res.WriteDoc(doc))
	got := string(mustRead(t, doc))
	require.Contains(t, got, benchSection)
	require.Equal(t, 1, strings.Count(got, "## Soak"))
	require.Equal(t, 1, strings.Count(got, "| pass criterion |"))
}

// requireOrdered checks that a latency row is sane: some orders, and
// percentiles that are positive and in order.
func requireOrdered(t *testing.T, r bench.LatencyRow) {
	t.Helper()
	require.Positive(t, r.Orders)
	require.Positive(t, r.P50)
	require.LessOrEqual(t, r.P50, r.P99)
	require.LessOrEqual(t, r.P99, r.Max)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
