package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/chaos"
	"github.com/orderflow/orderflow/internal/redistest"
)

// TestChaosSmall is the small chaos run of `make test` and CI: real
// processes, 20% provider faults, duplicate POSTs and cancels, a SIGKILL of
// each worker and a Redis restart; then no order may be lost and no effect
// applied twice (`make chaos` runs the full one).
func TestChaosSmall(t *testing.T) {
	t.Parallel()
	redistest.RequireBinary(t)
	var log bytes.Buffer
	res, err := chaos.Run(context.Background(), chaos.Config{
		Exe: orderflowBinary(t), Orders: 300, Workers: 2, KillsPerWorker: 1, RedisRestarts: 1,
		Duration: 8 * time.Second, Settle: 2 * time.Minute, Log: &log,
	})
	require.NoError(t, err, "log:\n%s", log.String())
	t.Logf("\n%s", res)
	require.Equal(t, 300, res.Accepted, "every order is accepted in the end")
	require.Zero(t, res.Lost, "lost orders")
	require.Zero(t, res.DoubleEffects, "double effects")
	require.True(t, res.Audit.OK(), "audit violations: %v", res.Audit.Violations)
	require.Equal(t, 2, res.Kills)
	require.Equal(t, 1, res.RedisRestarts)
	require.Equal(t, res.Accepted, res.Completed+res.Failed+res.Cancelled)
}
