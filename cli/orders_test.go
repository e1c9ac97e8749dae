package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// The API commands run against a real system in this process: the API, a
// worker and the simulators on an embedded Redis (server.StartDev).

// startSystem starts a system and returns its API's URL.
func startSystem(t *testing.T, cfg server.DevConfig) string {
	t.Helper()
	cfg.API.Listen, cfg.Logger = "127.0.0.1:0", slog.New(slog.DiscardHandler)
	cfg.Worker.ShutdownTimeout = time.Second
	d, err := server.StartDev(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	})
	return d.APIURL()
}

// runStdin runs the orderflow command with stdin.
func runStdin(stdin string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// requireOK requires exit code 0 and returns stdout.
func requireOK(t *testing.T, r result) string {
	t.Helper()
	require.Equal(t, ExitOK, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return r.stdout
}

// requireAPIError requires exit code 1 and every one of wants in stderr.
func requireAPIError(t *testing.T, r result, wants ...string) {
	t.Helper()
	require.Equal(t, ExitError, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	for _, w := range wants {
		require.Contains(t, r.stderr, w)
	}
}

// decodeJSON decodes a command's --json output.
func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	return v
}

// waitState waits until the order is in state.
func waitState(t *testing.T, apiURL, id, state string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r := run("orders", "get", id, "--json", "--api-url", apiURL)
		return r.code == ExitOK && decodeJSON[orders.Resource](t, r.stdout).State == state
	}, 10*time.Second, 10*time.Millisecond, "order %s reaches %s", id, state)
}

func TestOrdersCreateGetWatchHistoryList(t *testing.T) {
	t.Parallel()
	apiURL := startSystem(t, server.DevConfig{})
	at := []string{"--api-url", apiURL}

	out := requireOK(t, run(append([]string{"orders", "create", "--customer", "cust-42", "--item", "SKU-A:2:2499", "--item", "SKU:B:1:100",
		"--order-id", "cli-1", "--priority", "high", "--meta", "channel=web", "--idempotency-key", "k-1"}, at...)...))
	for _, want := range []string{"order_id", "cli-1", "running", "50.98 USD", "SKU-A × 2 at 24.99 USD", "SKU:B × 1", "metadata.channel", "high"} {
		require.Contains(t, out, want)
	}
	// The same key and body: a replay.
	again := requireOK(t, run(append([]string{"orders", "create", "--customer", "cust-42", "--item", "SKU-A:2:2499", "--item", "SKU:B:1:100",
		"--order-id", "cli-1", "--priority", "high", "--meta", "channel=web", "--idempotency-key", "k-1"}, at...)...))
	require.Contains(t, again, "a replay")

	out = requireOK(t, run(append([]string{"orders", "watch", "cli-1"}, at...)...))
	for _, want := range []string{"created in pending", "pending → reserving (start)", "charging → shipping (charged) after step charge",
		"shipping → completed (shipped)", "cli-1 ended completed (completed)"} {
		require.Contains(t, out, want)
	}
	o := decodeJSON[orders.Resource](t, requireOK(t, run(append([]string{"orders", "get", "--json", "cli-1"}, at...)...)))
	require.Equal(t, "completed", o.Status)
	require.NotEmpty(t, o.TrackingNumber)
	out = requireOK(t, run(append([]string{"orders", "get", "cli-1"}, at...)...))
	require.Contains(t, out, "tracking_number")
	require.Contains(t, out, o.TrackingNumber)

	hist := decodeJSON[historyBody](t, requireOK(t, run(append([]string{"orders", "history", "cli-1", "--json"}, at...)...)))
	require.Equal(t, "cli-1", hist.OrderID)
	require.Equal(t, statemachine.OrderCompleted, hist.Events[len(hist.Events)-1].To)
	out = requireOK(t, run(append([]string{"orders", "history", "cli-1"}, at...)...))
	require.Contains(t, out, "SEQ")
	require.Contains(t, out, "reserving → charging (reserved) after step reserve")

	// From a file, and from stdin; the watch in JSON lines.
	file := filepath.Join(t.TempDir(), "order.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"order_id":"cli-2","customer_id":"c","currency":"EUR","items":[{"sku":"x","qty":1,"unit_price_cents":5}]}`), 0o600))
	require.Equal(t, "cli-2", decodeJSON[orders.Resource](t, requireOK(t, run(append([]string{"orders", "create", "--file", file, "--json"}, at...)...))).OrderID)
	stdin := `{"order_id":"cli-3","customer_id":"c","currency":"EUR","items":[{"sku":"x","qty":1,"unit_price_cents":5}]}`
	require.Equal(t, "cli-3", decodeJSON[orders.Resource](t, requireOK(t, runStdin(stdin, append([]string{"orders", "create", "--file", "-", "--json"}, at...)...))).OrderID)
	lines := strings.Split(strings.TrimSpace(requireOK(t, run(append([]string{"orders", "watch", "cli-3", "--json"}, at...)...))), "\n")
	require.Equal(t, "completed", decodeJSON[orders.Resource](t, lines[len(lines)-1]).Status, "the last line is the order")
	for _, l := range lines[:len(lines)-1] {
		require.Contains(t, decodeJSON[map[string]any](t, l), "event")
	}

	// The list, its filters and its pages.
	requireOK(t, run(append([]string{"orders", "get", "cli-2", "--wait", "10s"}, at...)...))
	page := decodeJSON[struct {
		Orders     []orders.Resource `json:"orders"`
		NextCursor string            `json:"next_cursor"`
	}](t, requireOK(t, run(append([]string{"orders", "list", "--status", "completed", "--limit", "1", "--json"}, at...)...)))
	require.Len(t, page.Orders, 1)
	require.NotEmpty(t, page.NextCursor)
	out = requireOK(t, run(append([]string{"orders", "list", "--cursor", page.NextCursor}, at...)...))
	require.Contains(t, out, "ORDER ID")
	require.NotContains(t, out, page.Orders[0].OrderID+" ", "the next page")
	require.Contains(t, requireOK(t, run(append([]string{"orders", "list", "--dead-letter"}, at...)...)), "(no orders)")
	require.Contains(t, requireOK(t, run(append([]string{"orders", "list", "--state", "completed", "--limit", "500"}, at...)...)), "cli-1")

	// API errors: exit 1 with the problem's title and detail.
	requireAPIError(t, run(append([]string{"orders", "get", "nope"}, at...)...), "Not found (404)", "no order with this order_id")
	requireAPIError(t, run(append([]string{"orders", "cancel", "cli-1", "--reason", "too late"}, at...)...), "Not cancellable (409)")
	requireAPIError(t, run(append([]string{"orders", "create", "--customer", "c", "--currency", "usd", "--item", "S:1:1"}, at...)...),
		"Validation failed (400)", "currency: must be three uppercase letters")
	requireAPIError(t, run(append([]string{"orders", "create", "--customer", "c", "--item", "SKU-A:1:1", "--idempotency-key", "k-1"}, at...)...),
		"Idempotency-Key reused (422)")
	requireAPIError(t, run(append([]string{"orders", "list", "--state", "NOT-A-STATE"}, at...)...), "state")
	requireAPIError(t, run("orders", "get", "x", "--api-url", "http://127.0.0.1:1"), "GET /v1/orders/x")
}

func TestOrdersSignals(t *testing.T) {
	t.Parallel()
	reg, err := statemachine.OrderRegistry(statemachine.OrderV2Options{}, 2)
	require.NoError(t, err)
	apiURL := startSystem(t, server.DevConfig{
		Worker: server.WorkerConfig{Registry: reg},
		Sim: providers.SimConfig{
			Risk:     providers.Faults{ReviewCustomers: []string{"cust-review"}},
			Shipping: providers.Faults{ShipmentDuration: 1500 * time.Millisecond},
		},
	})
	at := []string{"--api-url", apiURL}
	for _, id := range []string{"rev-1", "rev-2"} {
		requireOK(t, run(append([]string{"orders", "create", "--customer", "cust-review", "--item", "TV:1:149900", "--order-id", id}, at...)...))
		waitState(t, apiURL, id, statemachine.OrderInReview)
	}
	out := requireOK(t, run(append([]string{"orders", "get", "rev-1"}, at...)...))
	require.Contains(t, out, "review")
	require.Contains(t, out, "deadline")

	// Pause and resume, while in review.
	require.Contains(t, requireOK(t, run(append([]string{"orders", "pause", "rev-1", "--reason", "checking"}, at...)...)), "paused")
	require.Contains(t, requireOK(t, run(append([]string{"orders", "list", "--state", "in_review"}, at...)...)), "paused")
	requireOK(t, run(append([]string{"orders", "resume", "rev-1"}, at...)...))
	requireAPIError(t, run(append([]string{"orders", "resume", "rev-2"}, at...)...), "Signal not accepted (409)", "not paused")

	// Approve: the order goes on, and the watch shows the shipment's
	// progress until it is delivered.
	requireOK(t, run(append([]string{"orders", "approve", "rev-1", "--reason", "called the customer"}, at...)...))
	require.Contains(t, requireOK(t, run(append([]string{"orders", "approve", "rev-1"}, at...)...)), "a replay")
	out = requireOK(t, run(append([]string{"orders", "watch", "rev-1", "--interval", "200ms"}, at...)...))
	for _, want := range []string{"signal pause", "checking", "in_review → reserving (review_approved)", "called the customer", "ship_tracked", "%", "rev-1 ended completed"} {
		require.Contains(t, out, want)
	}
	// Reject: it ends failed.
	requireOK(t, run(append([]string{"orders", "reject", "rev-2", "--json"}, at...)...))
	require.Contains(t, requireOK(t, run(append([]string{"orders", "watch", "rev-2"}, at...)...)), "rev-2 ended failed")
	requireAPIError(t, run(append([]string{"orders", "approve", "rev-2"}, at...)...), "Signal not accepted (409)")
}

func TestOrdersWithTokens(t *testing.T) {
	t.Parallel()
	tok := api.Token{Name: "ops", Secret: "ops-secret-0123456789", Scopes: []api.Scope{api.ScopeAdmin}}
	reader := api.Token{Name: "report", Secret: "report-secret-0123456789", Scopes: []api.Scope{api.ScopeOrdersRead}}
	apiURL := startSystem(t, server.DevConfig{API: server.APIConfig{API: api.Config{Tokens: []api.Token{tok, reader}}}})
	requireAPIError(t, run("orders", "list", "--api-url", apiURL), "Unauthorized (401)")
	requireAPIError(t, run("orders", "list", "--api-url", apiURL, "--token", "wrong-secret-0123456789"), "Unauthorized (401)")
	requireOK(t, run("orders", "list", "--api-url", apiURL, "--token", tok.Secret))

	// The providers' flow control: anyone who reads sees it, an admin
	// pauses and resumes.
	ops := []string{"--api-url", apiURL, "--token", tok.Secret}
	report := []string{"--api-url", apiURL, "--token", reader.Secret}
	requireAPIError(t, run("providers", "--api-url", apiURL), "Unauthorized (401)")
	states := func(args ...string) map[string]string {
		t.Helper()
		var list struct {
			Providers []struct{ Name, State string } `json:"providers"`
		}
		require.NoError(t, json.Unmarshal([]byte(requireOK(t, run(append([]string{"providers", "list", "--json"}, args...)...))), &list))
		out := map[string]string{}
		for _, p := range list.Providers {
			out[p.Name] = p.State
		}
		return out
	}
	require.Equal(t, map[string]string{"inventory": "closed", "payment": "closed", "shipping": "closed", "risk": "closed"}, states(report...))
	out := requireOK(t, run(append([]string{"providers"}, report...)...))
	require.NotContains(t, out, "not available")
	for _, want := range []string{"PROVIDER", "STATE", "payment", "inventory", "shipping", "risk", "closed"} {
		require.Contains(t, out, want)
	}

	requireAPIError(t, run(append([]string{"providers", "pause", "payment"}, report...)...), "(403)")
	out = requireOK(t, run(append([]string{"providers", "pause", "payment", "--reason", "provider maintenance"}, ops...)...))
	require.Regexp(t, `payment\s+paused`, out)
	require.Equal(t, "paused", states(report...)["payment"])
	require.Regexp(t, `payment\s+paused`, requireOK(t, run(append([]string{"providers", "list"}, report...)...)))
	requireOK(t, run(append([]string{"providers", "pause", "payment"}, ops...)...)) // again: harmless
	out = requireOK(t, run(append([]string{"providers", "resume", "payment"}, ops...)...))
	require.Regexp(t, `payment\s+closed`, out)
	require.Equal(t, "closed", states(ops...)["payment"])
	requireAPIError(t, run(append([]string{"providers", "pause", "bank"}, ops...)...), "(404)")
}

func TestOrdersUsage(t *testing.T) {
	t.Parallel()
	requireUsageError(t, run("orders"), "usage: orderflow orders [flags]", "orderflow orders watch", "--api-url", "a subcommand is required")
	require.Equal(t, ExitOK, run("orders", "--help").code)
	requireUsageError(t, run("orders", "nope"), `unknown subcommand "nope"`)
	requireUsageError(t, run("orders", "get"), "missing <order_id>")
	requireUsageError(t, run("orders", "get", "a", "b"), `unexpected argument "b"`)
	requireUsageError(t, run("orders", "get", "bad id"), "is not an order ID")
	requireUsageError(t, run("orders", "get", "a", "--wait", "1m"), "--wait")
	requireUsageError(t, run("orders", "history"), "missing <order_id>")
	requireUsageError(t, run("orders", "watch", "a", "--interval", "0s"), "--interval")
	requireUsageError(t, run("orders", "cancel"), "missing <order_id>")
	requireUsageError(t, run("orders", "create"), "--customer is required", "--item is required")
	requireUsageError(t, run("orders", "create", "--customer", "c", "--item", "nope"), "sku:qty:unit_price_cents")
	requireUsageError(t, run("orders", "create", "--customer", "c", "--item", "s:x:1"), "sku:qty:unit_price_cents")
	requireUsageError(t, run("orders", "create", "--file", "x.json", "--customer", "c"), "--file excludes --customer")
	requireUsageError(t, run("orders", "create", "--file", filepath.Join(t.TempDir(), "none.json")), "--file")
	requireUsageError(t, runStdin("not json", "orders", "create", "--file", "-"), "does not hold JSON")
	requireUsageError(t, run("orders", "list", "--limit", "900"), "--limit")
	requireUsageError(t, run("orders", "list", "--api-url", "ftp://x"), "--api-url")
	requireUsageError(t, run("orders", "list", "extra"), `unexpected argument "extra"`)
	requireUsageError(t, run("providers", "pause"), "missing <provider>")
}

func TestDiagram(t *testing.T) {
	t.Parallel()
	out := requireOK(t, run("diagram", "--version", "1"))
	require.True(t, strings.HasPrefix(out, "stateDiagram-v2"), out)
	require.Contains(t, out, "reserving --> charging: reserved")
	out = requireOK(t, run("diagram", "--version", "2", "--format", "dot"))
	require.True(t, strings.HasPrefix(out, `digraph "order v2"`), out)
	require.Contains(t, out, `"in_review" -> "reserving" [label="review_approved"];`)
	out = requireOK(t, run("diagram", "--version", "2", "--warehouses", "east,west"))
	require.Contains(t, out, "in_review")
	requireUsageError(t, run("diagram"), "--version is required")
	requireUsageError(t, run("diagram", "--version", "9"), "no such version")
	requireUsageError(t, run("diagram", "--version", "1", "--format", "png"), "--format")
}
