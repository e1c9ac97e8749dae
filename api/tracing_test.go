package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/internal/tracing"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// spanAttr returns the value of a span's attribute.
func spanAttr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// Each request is a server span named after its route; a new order's first
// task and record carry the span's context, so the workers continue its
// trace.
func TestRequestsAreTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r := redistest.New(t, redistest.BackendMiniredis)
	client := r.Client(t)
	b := setupConfig(t, client, api.Config{TracerProvider: tp}, api.Deps{})

	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res := b.post(orderBody(withID("traced-1")), "traceparent", caller)
	require.Equal(t, http.StatusAccepted, res.Code, "%s", res.Body)
	requireProblem(t, b.get("/v1/orders/nope"), http.StatusNotFound)

	spans := rec.Ended()
	require.Len(t, spans, 2)
	post, get := spans[0], spans[1]
	require.Equal(t, "POST /v1/orders", post.Name())
	require.Equal(t, trace.SpanKindServer, post.SpanKind())
	require.Equal(t, tracing.SpanContext(caller).TraceID(), post.SpanContext().TraceID(), "the caller's trace goes on")
	require.Equal(t, tracing.SpanContext(caller).SpanID(), post.Parent().SpanID())
	require.EqualValues(t, http.StatusAccepted, spanAttr(post, "http.response.status_code").AsInt64())
	require.Equal(t, "/v1/orders", spanAttr(post, "http.route").AsString())

	require.Equal(t, "GET /v1/orders/{order_id}", get.Name())
	require.EqualValues(t, http.StatusNotFound, spanAttr(get, "http.response.status_code").AsInt64())
	require.Equal(t, codes.Unset, get.Status().Code, "a 4xx is the caller's error, not the server's")

	// The order's record and its first task carry the request's span.
	want := tracing.TraceParent(trace.ContextWithSpanContext(context.Background(), post.SpanContext()))
	in, err := b.store.Load(context.Background(), "traced-1")
	require.NoError(t, err)
	require.Equal(t, want, in.TraceParent)
	pending, err := asynq.NewInspectorFromRedisClient(client).ListPendingTasks(statemachine.DefaultQueue)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	p, err := tasks.DecodeAdvancePayload(pending[0].Payload)
	require.NoError(t, err)
	require.Equal(t, want, p.TraceParent)
}

// Without a tracer provider nothing is traced: the record and the task
// carry no trace context.
func TestRequestsUntracedByDefault(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	b.create(orderBody(withID("untraced")))
	in, err := b.store.Load(context.Background(), "untraced")
	require.NoError(t, err)
	require.Empty(t, in.TraceParent)
}
