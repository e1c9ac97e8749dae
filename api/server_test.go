package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		require.Equal(t, http.StatusOK, b.get("/healthz").Code)
		require.Equal(t, http.StatusOK, b.get("/readyz").Code)
	})
}

// With Redis unreachable the API answers 503 with Retry-After, never 500,
// and recovers when Redis is back.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, redistest.Options{})
	// No retries: the test is about the API's answers, not how long the
	// client retries (with go-redis's defaults each request takes seconds).
	client := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = client.Close() })
	b := setupWith(t, client, api.Deps{})
	b.create(orderBody(withID("before-outage")))

	s.Kill()
	require.Equal(t, http.StatusOK, b.get("/healthz").Code, "the process is alive")
	for name, req := range map[string]func() *response{
		"readyz":     func() *response { return b.get("/readyz") },
		"create":     func() *response { return b.post(orderBody()) },
		"create key": func() *response { return b.post(orderBody(), api.HeaderIdempotencyKey, "outage-key") },
		"get":        func() *response { return b.get("/v1/orders/before-outage") },
		"history":    func() *response { return b.get("/v1/orders/before-outage/history") },
		"list":       func() *response { return b.get("/v1/orders") },
		"cancel":     func() *response { return b.cancel("before-outage") },
	} {
		t.Run(name, func(t *testing.T) {
			res := req()
			requireProblem(t, res, http.StatusServiceUnavailable)
			requireRetryAfter(t, res)
		})
	}

	s.Restart()
	require.Eventually(t, func() bool { return b.get("/readyz").Code == http.StatusOK }, 10*time.Second, 10*time.Millisecond)
	b.create(orderBody(withID("after-outage")))
	// The key of the request that failed was not kept: it runs now.
	b.create(orderBody(), api.HeaderIdempotencyKey, "outage-key")
}

func TestUnknownRouteAndMethod(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	requireProblem(t, b.get("/no/such/route"), http.StatusNotFound)
	requireProblem(t, b.get("/v1/orders/x/y/z"), http.StatusNotFound)
	res := b.do(http.MethodDelete, "/v1/orders", "")
	requireProblem(t, res, http.StatusMethodNotAllowed)
	require.Contains(t, res.Header.Get("Allow"), http.MethodGet)
	require.Contains(t, res.Header.Get("Allow"), http.MethodPost)
	requireProblem(t, b.do(http.MethodPut, "/v1/orders/x", ""), http.StatusMethodNotAllowed)
	requireProblem(t, b.get("/v1/orders/x/cancel"), http.StatusMethodNotAllowed)
}

func TestPanicIsInternalError(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{Mounts: map[string]http.Handler{
		"/boom": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret detail") }),
	}})
	for _, path := range []string{"/boom", "/boom/deeper"} {
		res := b.get(path)
		p := requireProblem(t, res, http.StatusInternalServerError)
		require.Equal(t, "internal error", p.Detail)
		require.NotContains(t, string(res.Body), "secret")
	}
	require.Equal(t, http.StatusOK, b.get("/healthz").Code, "the server survives")
}

func TestMounts(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{Mounts: map[string]http.Handler{
		"/ui": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ui " + r.URL.Path)) }),
	}})
	for _, path := range []string{"/ui", "/ui/", "/ui/orders"} {
		res := b.get(path)
		require.Equal(t, http.StatusOK, res.Code, path)
		require.Equal(t, "ui "+path, string(res.Body))
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	t.Run("default registry", func(t *testing.T) {
		t.Parallel()
		res := setupMini(t, api.Deps{}).get("/metrics")
		require.Equal(t, http.StatusOK, res.Code)
		require.Contains(t, res.Header.Get("Content-Type"), "text/plain")
		require.Contains(t, string(res.Body), "# TYPE go_goroutines gauge")
	})
	t.Run("gatherer", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "orderflow_test_total", Help: "A test counter."})
		reg.MustRegister(c)
		c.Add(3)
		res := setupMini(t, api.Deps{Gatherer: reg}).get("/metrics")
		require.Equal(t, http.StatusOK, res.Code)
		require.Contains(t, res.Header.Get("Content-Type"), "text/plain")
		body := string(res.Body)
		require.Contains(t, body, "# HELP orderflow_test_total A test counter.")
		require.Contains(t, body, "orderflow_test_total 3")
		require.False(t, strings.Contains(body, "go_goroutines"), "only the given gatherer")
	})
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := api.Config{}.WithDefaults()
	require.Equal(t, 24*time.Hour, c.IdempotencyTTL)
	require.False(t, c.RestrictHosts)
	require.Equal(t, time.Second, c.ReadyTimeout)
	require.NotNil(t, c.Logger)
	c = api.Config{IdempotencyTTL: time.Minute}.WithDefaults()
	require.Equal(t, time.Minute, c.IdempotencyTTL)
}
