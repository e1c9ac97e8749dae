package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

// One order is one trace, from the POST to its end: the request's span,
// under it the advances of the order (through its tasks, the wake path,
// handoffs and retries), under them each step attempt, and under each
// attempt its provider calls, whose requests carry the trace on.
func TestOrderIsOneTrace(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		d, stop := startDev(t, server.DevConfig{RedisURL: r.URL, TracerProvider: tp, Sim: providers.SimConfig{
			Payment: providers.Faults{DeclineCustomers: []string{"cust-broke"}},
		}})

		// Completed.
		post(t, d, "traced", "cust-42")
		requireStatus(t, d, "traced", "completed")

		// Declined: the compensation is in the trace too.
		post(t, d, "declined", "cust-broke")
		requireStatus(t, d, "declined", "failed")

		// Retried: the first charge fails, the retry (another task) is in
		// the same trace.
		res := do(t, http.MethodPut, d.SimURL()+"/payment/faults", `{"failure_rate":1}`)
		require.Equal(t, http.StatusOK, res.Code, res.Body)
		post(t, d, "retried", "cust-42")
		require.Eventually(t, func() bool {
			var o struct {
				Attempts  map[string]int
				LastError string `json:"last_error"`
			}
			require.NoError(t, json.Unmarshal([]byte(get(t, d.APIURL()+"/v1/orders/retried").Body), &o))
			// An attempt is counted when it starts; the failure is known
			// once its error is recorded.
			return o.Attempts["charge"] >= 1 && strings.Contains(o.LastError, "payment")
		}, 10*time.Second, 10*time.Millisecond)
		res = do(t, http.MethodPut, d.SimURL()+"/payment/faults", `{"failure_rate":0}`)
		require.Equal(t, http.StatusOK, res.Code, res.Body)
		requireStatus(t, d, "retried", "completed")

		stop() // every span has ended once the processes stopped
		spans := rec.Ended()
		names := requireOneTrace(t, spans, "traced")
		for _, want := range []string{"step reserve", "step charge", "step ship", "inventory reserve", "payment charge", "shipping ship"} {
			require.Positive(t, names[want], "a span %q in %v", want, names)
		}
		names = requireOneTrace(t, spans, "declined")
		for _, want := range []string{"step charge", "payment charge", "step release", "inventory release"} {
			require.Positive(t, names[want], "a span %q in %v", want, names)
		}
		names = requireOneTrace(t, spans, "retried")
		require.GreaterOrEqual(t, names["step charge"], 2, "the charge and its retry: %v", names)
		failed := 0
		for _, s := range spans {
			if s.Name() == "step charge" && spanAttr(s, "orderflow.order_id") == "retried" && s.Status().Code == codes.Error {
				failed++
			}
		}
		require.Positive(t, failed, "the failed attempt's span records its error")
	})
}

// post places an order and requires 202.
func post(t *testing.T, d *server.Dev, id, customer string) {
	t.Helper()
	res := do(t, http.MethodPost, d.APIURL()+"/v1/orders",
		`{"order_id":"`+id+`","customer_id":"`+customer+`","currency":"USD","items":[{"sku":"SKU-ABC","qty":1,"unit_price_cents":100}]}`)
	require.Equal(t, http.StatusAccepted, res.Code, res.Body)
}

// requireStatus waits for the order to end with status.
func requireStatus(t *testing.T, d *server.Dev, id, status string) {
	t.Helper()
	require.Contains(t, get(t, d.APIURL()+"/v1/orders/"+id+"?wait=20s").Body, `"status":"`+status+`"`)
}

// requireOneTrace requires that the spans of order id form one trace rooted
// at the request that created it, with the right parents, and returns how
// many spans of each name it holds.
func requireOneTrace(t *testing.T, spans []sdktrace.ReadOnlySpan, id string) map[string]int {
	t.Helper()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var root sdktrace.ReadOnlySpan
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	ofOrder := func(s sdktrace.ReadOnlySpan) bool {
		return spanAttr(s, "orderflow.order_id") == id || strings.HasPrefix(spanAttr(s, "orderflow.idempotency_key"), id+":")
	}
	for _, s := range spans {
		if s.Name() == "advance order" && ofOrder(s) {
			if p := byID[s.Parent().SpanID()]; p != nil && p.Name() == "POST /v1/orders" {
				root = p
			}
		}
	}
	require.NotNil(t, root, "%s: an advance is a child of the request's span", id)
	require.False(t, root.Parent().IsValid(), "the request's span is the root")
	parentName := func(s sdktrace.ReadOnlySpan) string {
		if p, ok := byID[s.Parent().SpanID()]; ok {
			return p.Name()
		}
		return "<none>"
	}
	names := map[string]int{}
	for _, s := range spans {
		if !ofOrder(s) {
			continue
		}
		require.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID(), "%s: %s is in the order's trace", id, s.Name())
		names[s.Name()]++
		switch {
		case s.Name() == "advance order":
			require.Contains(t, []string{"POST /v1/orders", "advance order"}, parentName(s), "an advance follows the request or another advance")
		case strings.HasPrefix(s.Name(), "step "):
			require.Equal(t, "advance order", parentName(s), "%s runs in an advance", s.Name())
			require.Equal(t, strings.TrimPrefix(s.Name(), "step "), spanAttr(s, "orderflow.step"))
			require.NotEmpty(t, spanAttr(s, "orderflow.attempt"))
		default:
			op := spanAttr(s, "orderflow.provider_op")
			require.NotEmpty(t, op, "%s is a provider call", s.Name())
			require.Equal(t, "step "+op, parentName(s), "%s is called by its step", s.Name())
			require.NotEmpty(t, spanAttr(s, "http.response.status_code"), s.Name())
			require.Equal(t, trace.SpanKindClient, s.SpanKind())
		}
	}
	require.Positive(t, names["advance order"])
	return names
}

// spanAttr returns an attribute of s as a string, "" when s lacks it.
func spanAttr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return fmt.Sprint(kv.Value.AsInterface())
		}
	}
	return ""
}
