package server_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

// newWorker builds a worker over r with in-process providers.
func newWorker(t *testing.T, r *redistest.Instance) *server.Worker {
	t.Helper()
	w, err := server.NewWorker(r.Client(t), providers.NewInProcess().Set(),
		server.WorkerConfig{Concurrency: 2, ShutdownTimeout: time.Second, Logger: discard}, nil)
	require.NoError(t, err)
	return w
}

// returnsWithin requires f to return before stopTimeout.
func returnsWithin(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(stopTimeout):
		t.Fatalf("%s did not return within %s", what, stopTimeout)
	}
}

func TestWorkerShutdownIsIdempotent(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		w := newWorker(t, r)
		require.NotNil(t, w.Engine())
		require.NoError(t, w.Start())
		returnsWithin(t, "the first Shutdown", w.Shutdown)
		returnsWithin(t, "the second Shutdown", w.Shutdown)
	})
}

func TestWorkerShutdownBeforeStart(t *testing.T) {
	t.Parallel()
	w := newWorker(t, redistest.New(t, redistest.BackendMiniredis))
	returnsWithin(t, "Shutdown", w.Shutdown)
	returnsWithin(t, "the second Shutdown", w.Shutdown)
}

func TestWorkerConfigWithDefaults(t *testing.T) {
	t.Parallel()
	c := server.WorkerConfig{}.WithDefaults()
	require.Equal(t, 20, c.Concurrency)
	require.Equal(t, 200*time.Millisecond, c.TaskCheckInterval)
	require.Equal(t, 500*time.Millisecond, c.DelayedTaskCheckInterval)
	require.Equal(t, 10*time.Second, c.ShutdownTimeout)
	require.NotNil(t, c.Logger)
	require.Same(t, c.Logger, c.Engine.Logger)

	set := server.WorkerConfig{Concurrency: 3, ShutdownTimeout: time.Second, Logger: discard}.WithDefaults()
	require.Equal(t, 3, set.Concurrency)
	require.Equal(t, time.Second, set.ShutdownTimeout)
	require.Same(t, discard, set.Logger)
}

// Without flow control configured the engine gets none; with it, the
// worker's flow control takes the engine's lease and the order workflow's
// settling steps.
func TestWorkerFlowControlOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	w := newWorker(t, r)
	require.Nil(t, w.Flow())
	require.Nil(t, w.Engine().Config().Flow)

	cfg := server.WorkerConfig{Concurrency: 2, ShutdownTimeout: time.Second, Logger: discard,
		Flow: flowcontrol.Config{Limits: []flowcontrol.Limit{{Step: "charge", Field: "customer_id", Max: 1}}}}
	cfg.Engine.Lease = 2 * time.Second
	w, err := server.NewWorker(r.Client(t), providers.NewInProcess().Set(), cfg, nil)
	require.NoError(t, err)
	require.NotNil(t, w.Flow())
	require.Same(t, w.Flow(), w.Engine().Config().Flow)
	fc := w.Flow().Config()
	require.Equal(t, 2*time.Second, fc.Lease)
	require.Equal(t, server.OrderSettles, fc.Settles)
	require.NoError(t, w.Start())
	returnsWithin(t, "Shutdown", w.Shutdown)

	cfg.Flow.Limits[0].Max = 0
	_, err = server.NewWorker(r.Client(t), providers.NewInProcess().Set(), cfg, nil)
	require.ErrorContains(t, err, "Limits[0]")
}
