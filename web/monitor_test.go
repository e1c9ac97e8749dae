package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/web"
)

// newMonitor returns asynqmon over a fresh miniredis holding one pending
// task in the queue "workflow".
func newMonitor(t *testing.T, readOnly bool) *asynqmon.HTTPHandler {
	t.Helper()
	r := redistest.New(t, redistest.BackendMiniredis)
	c := asynq.NewClientFromRedisClient(r.Client(t))
	_, err := c.Enqueue(asynq.NewTask("workflow:advance", []byte(`{}`)), asynq.Queue("workflow"), asynq.TaskID("t1"))
	require.NoError(t, err)
	h := web.NewMonitor(asynq.RedisClientOpt{Addr: r.Addr}, readOnly)
	require.Equal(t, web.MonitorPath, h.RootPath())
	return h
}

// serve sends one request to h, at path under MonitorPath.
func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, web.MonitorPath+path, nil))
	return rec
}

// actions are requests that change something, in an order in which each
// succeeds.
var actions = []struct{ method, path string }{
	{http.MethodPost, "/api/queues/workflow:pause"},
	{http.MethodPost, "/api/queues/workflow/pending_tasks/t1:archive"},
	{http.MethodDelete, "/api/queues/workflow/archived_tasks/t1"},
	{http.MethodDelete, "/api/queues/workflow"},
}

func TestMonitorReadOnly(t *testing.T) {
	t.Parallel()
	h := newMonitor(t, true)
	for _, path := range []string{"/api/queues", "/api/queues/workflow", "/api/queues/workflow/pending_tasks", "/api/servers"} {
		require.Equal(t, http.StatusOK, serve(h, http.MethodGet, path).Code, path)
	}
	for _, a := range actions {
		require.Equal(t, http.StatusMethodNotAllowed, serve(h, a.method, a.path).Code, "%s %s", a.method, a.path)
	}
	rec := serve(h, http.MethodGet, "/api/queues/workflow/pending_tasks")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `"id":"t1"`, "nothing changed")
	require.NoError(t, h.Close())
}

func TestMonitorWritable(t *testing.T) {
	t.Parallel()
	h := newMonitor(t, false)
	require.Contains(t, serve(h, http.MethodGet, "/api/queues").Body.String(), `"workflow"`)
	for _, a := range actions {
		rec := serve(h, a.method, a.path)
		require.Less(t, rec.Code, 300, "%s %s: %s", a.method, a.path, rec.Body)
	}
	require.NotContains(t, serve(h, http.MethodGet, "/api/queues").Body.String(), `"workflow"`, "the queue was deleted")
	require.NoError(t, h.Close())
}

func TestMonitorServesTheUI(t *testing.T) {
	t.Parallel()
	h := newMonitor(t, true)
	t.Cleanup(func() { _ = h.Close() })
	rec := serve(h, http.MethodGet, "/")
	require.Equal(t, http.StatusOK, rec.Code)
	require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html"), rec.Header().Get("Content-Type"))
	require.Contains(t, rec.Body.String(), web.MonitorPath, "the UI knows its root path")
}
