package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

// metricName finds the metric names in PromQL, roughly: identifiers of
// orderflow's and asynq's metrics. Recording rules (orderflow:...) are not
// metrics and do not match.
var metricName = regexp.MustCompile(`\b(?:orderflow|asynq)_[a-z0-9_]+\b`)

// conditional are the metrics that a system serves only when it is
// configured for them, so the test system cannot show them; each says why.
// None today: the test system configures flow control (a provider gate and
// a breaker, see served) and drives a breaker open and closed again.
var conditional = map[string]string{}

// rules is the shape of a Prometheus rule file.
type rules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// alertMetrics loads the alert rules, checks their shape, and returns the
// metrics their expressions use.
func alertMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("prometheus/alerts.yml")
	require.NoError(t, err)
	var r rules
	require.NoError(t, yaml.UnmarshalStrict(b, &r))
	require.NotEmpty(t, r.Groups)
	used := map[string]bool{}
	alerts := map[string]bool{}
	for _, g := range r.Groups {
		require.NotEmpty(t, g.Name)
		for _, rule := range g.Rules {
			require.NotEmpty(t, rule.Expr)
			require.True(t, (rule.Alert == "") != (rule.Record == ""), "a rule is an alert or a recording rule: %+v", rule)
			if rule.Alert != "" {
				require.False(t, alerts[rule.Alert], "alert %s is defined twice", rule.Alert)
				alerts[rule.Alert] = true
				require.Contains(t, []string{"critical", "warning", "info"}, rule.Labels["severity"], rule.Alert)
				require.NotEmpty(t, rule.Annotations["summary"], rule.Alert)
				require.NotEmpty(t, rule.Annotations["description"], rule.Alert)
				_, err := time.ParseDuration(rule.For)
				require.NoError(t, err, "%s: for", rule.Alert)
			}
			for _, m := range metricName.FindAllString(rule.Expr, -1) {
				used[m] = true
			}
		}
	}
	return used
}

// dashboardMetrics loads the dashboard, checks its shape, and returns the
// metrics its queries use.
func dashboardMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("grafana/orderflow.json")
	require.NoError(t, err)
	var d struct {
		UID    string           `json:"uid"`
		Title  string           `json:"title"`
		Panels []map[string]any `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	require.Equal(t, "orderflow", d.UID)
	require.NotEmpty(t, d.Title)
	ids := map[float64]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		id, _ := p["id"].(float64)
		require.False(t, ids[id], "panel id %v is used twice", id)
		ids[id] = true
		require.NotEmpty(t, p["title"])
		if p["type"] == "row" {
			continue
		}
		require.NotEmpty(t, p["description"], "panel %q says what it shows", p["title"])
		targets, _ := p["targets"].([]any)
		require.NotEmpty(t, targets, "panel %q has queries", p["title"])
		for _, target := range targets {
			expr, _ := target.(map[string]any)["expr"].(string)
			require.NotEmpty(t, expr, "panel %q", p["title"])
			found := metricName.FindAllString(expr, -1)
			require.NotEmpty(t, found, "panel %q queries orderflow's metrics: %s", p["title"], expr)
			for _, m := range found {
				used[m] = true
			}
		}
	}
	return used
}

// declaredMetrics returns the orderflow and asynq metrics the module's code
// declares: every such name written as a string in a non-test Go file.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	literal := regexp.MustCompile(`"((?:orderflow|asynq)_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// served runs orders through a real system (API, worker with flow
// control, simulators, on the Redis r) and returns the metric families its
// /metrics serves, with their types. The orders complete, are declined
// (compensation), meet a provider's unexpected answers, and trip the
// payment provider's circuit breaker, whose open circuit holds a step back.
func served(t *testing.T, r *redistest.Instance) map[string]string {
	t.Helper()
	flow := flowcontrol.Config{
		Gate: true,
		// Two failed calls open the payment circuit for a second: the
		// charge's next attempt is held back while it is open.
		Breaker: flowcontrol.BreakerConfig{ErrorRate: 0.5, MinCalls: 2, Window: 10 * time.Second, OpenFor: time.Second, MaxOpen: 2 * time.Second},
	}
	d, err := server.StartDev(server.DevConfig{
		RedisURL: r.URL, Logger: slog.New(slog.DiscardHandler),
		API:    server.APIConfig{Listen: "127.0.0.1:0"},
		Worker: server.WorkerConfig{ShutdownTimeout: time.Second, Flow: flow},
		Sim:    providers.SimConfig{Payment: providers.Faults{DeclineCustomers: []string{"cust-broke"}}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	})
	send(t, http.MethodPut, d.SimURL()+"/inventory/faults", `{"stray_rate":1}`, http.StatusOK)
	send(t, http.MethodPost, d.APIURL()+"/v1/orders", order("ok", "cust-42"), http.StatusAccepted)
	require.Eventually(t, func() bool {
		return strings.Contains(send(t, http.MethodGet, d.APIURL()+"/metrics", "", http.StatusOK), "orderflow_provider_unexpected_total{")
	}, 10*time.Second, 20*time.Millisecond, "a stray answer is counted")
	send(t, http.MethodPut, d.SimURL()+"/inventory/faults", `{"stray_rate":0}`, http.StatusOK)
	send(t, http.MethodPost, d.APIURL()+"/v1/orders", order("declined", "cust-broke"), http.StatusAccepted)
	require.Contains(t, send(t, http.MethodGet, d.APIURL()+"/v1/orders/ok?wait=20s", "", http.StatusOK), `"status":"completed"`)
	require.Contains(t, send(t, http.MethodGet, d.APIURL()+"/v1/orders/declined?wait=20s", "", http.StatusOK), `"status":"failed"`)
	// The payment provider fails every call: its circuit opens, and the
	// charge waits; then it recovers.
	send(t, http.MethodPut, d.SimURL()+"/payment/faults", `{"failure_rate":1}`, http.StatusOK)
	send(t, http.MethodPost, d.APIURL()+"/v1/orders", order("tripped", "cust-42"), http.StatusAccepted)
	require.Eventually(t, func() bool {
		text := send(t, http.MethodGet, d.APIURL()+"/metrics", "", http.StatusOK)
		return strings.Contains(text, `orderflow_breaker_transitions_total{from="closed",provider="payment",to="open"}`) &&
			strings.Contains(text, "orderflow_flow_waits_total{")
	}, 10*time.Second, 20*time.Millisecond, "the payment circuit opens and holds the charge back")
	send(t, http.MethodPut, d.SimURL()+"/payment/faults", `{"failure_rate":0}`, http.StatusOK)
	require.Regexp(t, `orderflow_orders_running\{state="[a-z_]+"\} [0-9]`, send(t, http.MethodGet, d.APIURL()+"/metrics", "", http.StatusOK))
	// The reapers publish the due index's gauges on their next pass.
	var text string
	require.Eventually(t, func() bool {
		text = send(t, http.MethodGet, d.APIURL()+"/metrics", "", http.StatusOK)
		return strings.Contains(text, "orderflow_due_lag_seconds ")
	}, 10*time.Second, 20*time.Millisecond)
	types := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	return types
}

func order(id, customer string) string {
	return `{"order_id":"` + id + `","customer_id":"` + customer + `","currency":"USD","items":[{"sku":"SKU-1","qty":1,"unit_price_cents":100}]}`
}

// send sends a request, requires the status, and returns the body.
func send(t *testing.T, method, url, body string, status int) string {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, status, res.StatusCode, "%s %s: %s", method, url, b)
	return string(b)
}

// baseName is the family a sample name belongs to: a histogram's _bucket,
// _sum and _count are the histogram's.
func baseName(name string, types map[string]string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && (types[base] == "histogram" || types[base] == "summary") {
			return base
		}
	}
	return name
}

// The dashboard and the alerts name only metrics a running system serves,
// and the dashboard shows every metric the code declares: a metric added to
// the code fails here until the dashboard has a panel for it.
func TestDashboardAndAlertsMatchTheMetrics(t *testing.T) {
	t.Parallel()
	dashboard, alerts := dashboardMetrics(t), alertMetrics(t)
	declared := declaredMetrics(t)
	require.NotEmpty(t, declared)
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		types := served(t, r)
		for _, file := range []struct {
			name string
			used map[string]bool
		}{{"grafana/orderflow.json", dashboard}, {"prometheus/alerts.yml", alerts}} {
			for _, m := range slices.Sorted(maps.Keys(file.used)) {
				base := baseName(m, types)
				if _, ok := types[base]; ok {
					continue
				}
				if why, ok := conditional[base]; ok && declared[base] {
					t.Logf("%s names %s, which the test system does not serve: %s", file.name, base, why)
					continue
				}
				t.Errorf("%s names %s, which /metrics does not serve", file.name, m)
			}
		}
		onDashboard := map[string]bool{}
		for m := range dashboard {
			onDashboard[baseName(m, types)] = true
		}
		for m := range types {
			if metricName.MatchString(m) && !onDashboard[m] {
				t.Errorf("/metrics serves %s, which the dashboard does not show", m)
			}
		}
		for m := range declared {
			if !onDashboard[m] {
				t.Errorf("the code declares %s, which the dashboard does not show", m)
			}
		}
	})
}
