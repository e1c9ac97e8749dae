package server_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/server"
)

// startAPI starts an API process on a free port over r, stopped at the end
// of the test.
func startAPI(t *testing.T, r *redistest.Instance, cfg server.APIConfig) *server.APIProcess {
	t.Helper()
	cfg.Listen, cfg.Logger = "127.0.0.1:0", discard
	p, err := server.StartAPI(openRedis(t, r), cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, p.Shutdown) })
	return p
}

func TestStartAPI(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		p := startAPI(t, r, server.APIConfig{})
		require.True(t, strings.HasPrefix(p.URL(), "http://127.0.0.1:"), p.URL())
		get(t, p.URL()+"/healthz")
		get(t, p.URL()+"/readyz")
		get(t, p.URL()+"/metrics")
		require.Equal(t, http.StatusNotFound, do(t, http.MethodGet, p.URL()+"/v1/orders/nope", "").Code)

		ui := get(t, p.URL()+"/monitor/")
		require.True(t, strings.HasPrefix(ui.Header.Get("Content-Type"), "text/html"), ui.Header.Get("Content-Type"))

		// asynqmon sets no Content-Type on its API; the body is JSON.
		var queues struct{ Queues []any }
		require.NoError(t, json.Unmarshal([]byte(get(t, p.URL()+"/monitor/api/queues").Body), &queues))

		for _, m := range []string{http.MethodDelete, http.MethodPost} {
			path := "/monitor/api/queues/workflow"
			if m == http.MethodPost {
				path += ":pause"
			}
			require.Equal(t, http.StatusMethodNotAllowed, do(t, m, p.URL()+path, "").Code, "%s %s is refused: read-only by default", m, path)
		}
	})
}

func TestStartAPIMonitorWritable(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		p := startAPI(t, r, server.APIConfig{MonitorWritable: true})
		resp := do(t, http.MethodDelete, p.URL()+"/monitor/api/queues/workflow", "")
		require.NotEqual(t, http.StatusMethodNotAllowed, resp.Code, resp.Body)
	})
}

func TestStartAPIListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	r := redistest.New(t, redistest.BackendMiniredis)
	_, err = server.StartAPI(openRedis(t, r), server.APIConfig{Listen: ln.Addr().String(), Logger: discard}, nil)
	require.ErrorContains(t, err, ln.Addr().String())
}
