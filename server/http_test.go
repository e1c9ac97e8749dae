package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/server"
)

func TestListenHTTP(t *testing.T) {
	t.Parallel()
	svc, err := server.ListenHTTP("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("hello " + r.URL.Path))
	}), discard)
	require.NoError(t, err)
	require.NotEqual(t, "127.0.0.1:0", svc.Addr(), "a port was picked")
	require.Equal(t, "http://"+svc.Addr(), svc.URL())
	require.Equal(t, "hello /x", get(t, svc.URL()+"/x").Body)

	// The port is taken while the service runs.
	_, err = server.ListenHTTP(svc.Addr(), http.NotFoundHandler(), discard)
	require.Error(t, err)

	shutdown(t, svc.Shutdown)
	_, err = http.Get(svc.URL() + "/x")
	require.Error(t, err, "no longer serving")
}

// Shutdown waits for running requests until its context ends, then closes
// them and returns.
func TestListenHTTPShutdownDeadline(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	svc, err := server.ListenHTTP("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), discard)
	require.NoError(t, err)
	reqDone := make(chan error, 1)
	go func() {
		resp, err := http.Get(svc.URL())
		if err == nil {
			resp.Body.Close()
		}
		reqDone <- err
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, svc.Shutdown(ctx), context.DeadlineExceeded)
	select {
	case err := <-reqDone:
		require.Error(t, err, "the stuck request was cut off")
	case <-time.After(stopTimeout):
		t.Fatal("the stuck request still runs")
	}
}

func TestMetricsHandler(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	svc, err := server.ListenHTTP("127.0.0.1:0", server.MetricsHandler(reg), discard)
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, svc.Shutdown) })
	r := get(t, svc.URL()+"/metrics")
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain"), r.Header.Get("Content-Type"))
	require.Contains(t, r.Body, "orderflow_test_total 3")
	require.Equal(t, http.StatusNotFound, do(t, http.MethodGet, svc.URL()+"/other", "").Code)
}
