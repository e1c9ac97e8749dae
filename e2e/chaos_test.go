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
// processes, 20% provider faults (in-progress keys and stray 401/404s
// among them), orders sent by Idempotency-Key alone, duplicate POSTs and
// cancels, a SIGKILL of each worker and two Redis restarts; then no order
// may be lost, no effect applied twice or left on a failed order, and no
// key may make two orders (`make chaos` runs the full one).
func TestChaosSmall(t *testing.T) {
	t.Parallel()
	redistest.RequireBinary(t)
	var log bytes.Buffer
	res, err := chaos.Run(context.Background(), chaos.Config{
		Exe: orderflowBinary(t), Orders: 300, Workers: 2, KillsPerWorker: 1, RedisRestarts: 2,
		Duration: 8 * time.Second, Settle: 2 * time.Minute, Log: &log,
	})
	require.NoError(t, err, "log:\n%s", log.String())
	t.Logf("\n%s", res)
	require.Equal(t, 300, res.Accepted, "every order is accepted in the end")
	require.Zero(t, res.Lost, "lost orders")
	require.Zero(t, res.DoubleEffects, "double effects")
	require.Zero(t, res.LeftEffects, "effects left on failed or cancelled orders")
	require.Zero(t, res.DuplicateOrders, "duplicate orders per key")
	require.Positive(t, res.KeyOnly, "some orders went by key alone")
	require.Positive(t, res.V2, "some orders ran on workflow v2")
	require.True(t, res.Audit.OK(), "audit violations: %v", res.Audit.Violations)
	require.Equal(t, 2, res.Kills)
	require.Equal(t, 2, res.RedisRestarts)
	require.Equal(t, res.Accepted, res.Completed+res.Failed+res.Cancelled)
}

// TestClusterChaosSmall is a small chaos run on a 3-master Redis Cluster:
// real processes given --redis-cluster, provider faults, a SIGKILL of each
// worker, a master killed and restarted, and a slot migrated between
// masters with redis-cli --cluster reshard while orders run (the slot of
// the first shard of the indexes, and of a tenth of the orders' records).
// No order may be lost, no effect applied twice, the audit clean.
func TestClusterChaosSmall(t *testing.T) {
	t.Parallel()
	redistest.RequireCLI(t)
	var log bytes.Buffer
	res, err := chaos.Run(context.Background(), chaos.Config{
		Exe: orderflowBinary(t), Orders: 200, Workers: 2, KillsPerWorker: 1, RedisRestarts: 1,
		Cluster: true, Reshards: 1,
		Duration: 8 * time.Second, Settle: 2 * time.Minute, Log: &log,
	})
	require.NoError(t, err, "log:\n%s", log.String())
	t.Logf("\n%s", res)
	require.Equal(t, 200, res.Accepted, "every order is accepted in the end")
	require.Zero(t, res.Lost, "lost orders")
	require.Zero(t, res.DoubleEffects, "double effects")
	require.Zero(t, res.LeftEffects, "effects left on failed or cancelled orders")
	require.Zero(t, res.DuplicateOrders, "duplicate orders per key")
	require.True(t, res.Audit.OK(), "audit violations: %v", res.Audit.Violations)
	require.Equal(t, []int{0}, res.Reshards, "slot 0 moved mid-run")
	require.Equal(t, 1, res.RedisRestarts)
	require.Equal(t, res.Accepted, res.Completed+res.Failed+res.Cancelled)
}
