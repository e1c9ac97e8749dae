package providers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/internal/tracing"
)

// A provider call is a client span, child of the caller's, and its request
// carries the span's context in traceparent.
func TestCallsAreTraced(t *testing.T) {
	t.Parallel()
	headers := make(chan string, 4)
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Get("traceparent")
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"transaction_id":"txn-1","error":"card_declined"}`))
	}))
	t.Cleanup(srv.Close)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	set, err := NewHTTP(HTTPConfig{InventoryURL: srv.URL, PaymentURL: srv.URL, ShippingURL: srv.URL, TracerProvider: tp})
	require.NoError(t, err)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "step charge")
	_, err = set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o-1:charge", OrderID: "o-1", AmountCents: 100, Currency: "USD"})
	require.NoError(t, err)
	status.Store(http.StatusPaymentRequired)
	_, err = set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o-2:charge", OrderID: "o-2", AmountCents: 100, Currency: "USD"})
	require.Error(t, err)
	parent.End()

	spans := rec.Ended()
	require.Len(t, spans, 3)
	for i, s := range spans[:2] {
		require.Equal(t, "payment charge", s.Name())
		require.Equal(t, trace.SpanKindClient, s.SpanKind())
		require.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID())
		sent := <-headers
		require.Equal(t, tracing.TraceParent(trace.ContextWithSpanContext(ctx, s.SpanContext())), sent, "call %d carries its span", i)
	}
	require.Equal(t, codes.Unset, spans[0].Status().Code)
	require.Equal(t, codes.Error, spans[1].Status().Code, "a decline is an error")
}

// Without tracing a request carries no traceparent.
func TestCallsUntracedByDefault(t *testing.T) {
	t.Parallel()
	headers := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Clone()
		_, _ = w.Write([]byte(`{"transaction_id":"txn-1"}`))
	}))
	t.Cleanup(srv.Close)
	set, err := NewHTTP(HTTPConfig{InventoryURL: srv.URL, PaymentURL: srv.URL, ShippingURL: srv.URL})
	require.NoError(t, err)
	_, err = set.Payment.Charge(context.Background(), ChargeRequest{IdempotencyKey: "o-1:charge", OrderID: "o-1", AmountCents: 100, Currency: "USD"})
	require.NoError(t, err)
	require.Empty(t, (<-headers).Get("traceparent"))
}
