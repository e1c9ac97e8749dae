package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/internal/syncbuf"
)

// The tests below run the long-running commands until their context is
// cancelled, as SIGINT or SIGTERM would, and require a clean exit.

// startTimeout bounds how long a command may take to start or to stop.
const startTimeout = 20 * time.Second

// running is a command running in a goroutine.
type running struct {
	t              *testing.T
	stdout, stderr *syncbuf.Buffer
	cancel         context.CancelFunc
	done           chan int
}

// start runs the orderflow command in the background; it is stopped at the
// end of the test if the test does not stop it.
func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { r.done <- Main(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(startTimeout):
			t.Errorf("orderflow %s did not stop", args[0])
		}
	})
	return r
}

// waitFor waits until out matches re and returns the first submatch (or the
// match). It fails if the command exits first.
func (r *running) waitFor(out *syncbuf.Buffer, re *regexp.Regexp) string {
	r.t.Helper()
	deadline := time.After(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[len(m)-1]
		}
		select {
		case code := <-r.done:
			r.done <- code
			r.t.Fatalf("the command exited with %d before printing %s\nstdout: %s\nstderr: %s", code, re, r.stdout, r.stderr)
		case <-deadline:
			r.t.Fatalf("no %s within %s\nstdout: %s\nstderr: %s", re, startTimeout, r.stdout, r.stderr)
		case <-tick.C:
		}
	}
}

// stop cancels the command's context and requires exit code 0.
func (r *running) stop() {
	r.t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code
		require.Equal(r.t, ExitOK, code, "stderr: %s", r.stderr)
	case <-time.After(startTimeout):
		r.t.Fatalf("the command did not stop within %s", startTimeout)
	}
}

// httpGet requires a GET of url to answer status and returns the body.
func httpGet(t *testing.T, url string, status int) string {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, status, res.StatusCode, "GET %s: %s", url, b)
	return string(b)
}

var (
	devRunning  = regexp.MustCompile(`orderflow dev is running:\n\s+api:\s+(http://127\.0\.0\.1:\d+)/v1/orders`)
	apiListens  = regexp.MustCompile(`"msg":"api listening".*"url":"(http://127\.0\.0\.1:\d+)"`)
	metricsURL  = regexp.MustCompile(`"msg":"metrics listening".*"url":"(http://127\.0\.0\.1:\d+/metrics)"`)
	simListens  = regexp.MustCompile(`"msg":"simulators listening".*"payment":"(http://127\.0\.0\.1:\d+)/payment"`)
	quietDevArg = []string{"--listen", "127.0.0.1:0", "--log-level", "error"}
)

// requireOrderCompletes posts an order to the API at base and waits until a
// worker completes it.
func requireOrderCompletes(t *testing.T, base string) {
	t.Helper()
	body := `{"customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}]}`
	res, err := http.Post(base+"/v1/orders", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	loc := res.Header.Get("Location")
	require.NotEmpty(t, loc)
	require.Eventually(t, func() bool { return orderStatus(base+loc) == "completed" }, startTimeout, 20*time.Millisecond)
}

// orderStatus returns the status of the order at url, or "" when it cannot
// be read. It runs in require.Eventually's goroutine, so it must not fail
// the test.
func orderStatus(url string) string {
	res, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var o struct{ Status string }
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&o) != nil {
		return ""
	}
	return o.Status
}

func TestDevEmbedded(t *testing.T) {
	t.Parallel()
	r := start(t, slices.Concat([]string{"dev"}, quietDevArg)...)
	base := r.waitFor(r.stdout, devRunning)
	require.Contains(t, r.stdout.String(), "embedded miniredis")
	httpGet(t, base+"/healthz", http.StatusOK)
	httpGet(t, base+"/readyz", http.StatusOK)
	requireOrderCompletes(t, base)
	r.stop()
}

func TestDevWithRedisURL(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, rd *redistest.Instance) {
		r := start(t, slices.Concat([]string{"dev", "--redis-url", rd.URL}, quietDevArg)...)
		base := r.waitFor(r.stdout, devRunning)
		require.NotContains(t, r.stdout.String(), "embedded miniredis")
		requireOrderCompletes(t, base)
		r.stop()
	})
}

// api, sim and worker together are the system that dev runs in one
// process.
func TestAPISimWorker(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, rd *redistest.Instance) {
		sim := start(t, "sim", "--redis-url", rd.URL, "--sim-listen", "127.0.0.1:0")
		simBase := sim.waitFor(sim.stderr, simListens)

		api := start(t, "api", "--redis-url", rd.URL, "--listen", "127.0.0.1:0")
		base := api.waitFor(api.stderr, apiListens)
		httpGet(t, base+"/readyz", http.StatusOK)

		worker := start(t, "worker", "--redis-url", rd.URL, "--metrics-listen", "127.0.0.1:0",
			"--payment-url", simBase+"/payment", "--inventory-url", simBase+"/inventory", "--shipping-url", simBase+"/shipping")
		metrics := worker.waitFor(worker.stderr, metricsURL)
		require.Contains(t, httpGet(t, metrics, http.StatusOK), "# TYPE")

		requireOrderCompletes(t, base)
		api.stop()
		worker.stop()
		sim.stop()
	})
}

func TestListenInUse(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t, redistest.BackendMiniredis)
	first := start(t, "api", "--redis-url", rd.URL, "--listen", "127.0.0.1:0")
	addr := strings.TrimPrefix(first.waitFor(first.stderr, apiListens), "http://")
	r := run("api", "--redis-url", rd.URL, "--listen", addr)
	require.Equal(t, ExitError, r.code, "stderr: %s", r.stderr)
	require.Contains(t, r.stderr, addr)
	first.stop()
}
