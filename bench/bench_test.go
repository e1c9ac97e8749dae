package bench_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/bench"
	"github.com/orderflow/orderflow/internal/redistest"
)

// TestRunSmoke runs the whole harness at a tiny scale, so that `make bench`
// keeps working: it builds the binary the harness starts as its workers.
func TestRunSmoke(t *testing.T) {
	t.Parallel()
	redistest.RequireBinary(t)
	exe := filepath.Join(t.TempDir(), "orderflow")
	out, err := exec.Command("go", "build", "-o", exe, "../cmd/orderflow").CombinedOutput()
	require.NoError(t, err, "%s", out)

	var log bytes.Buffer
	res, err := bench.Run(context.Background(), bench.Config{
		Exe: exe, Orders: 300, Rounds: 1, Concurrency: 4, IdleSamples: 3, IdleWindow: 200 * time.Millisecond,
		APIDuration: 200 * time.Millisecond, APIConnections: 4, Scaling: []int{1}, ScalingLatency: time.Millisecond,
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

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
