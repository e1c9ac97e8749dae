package providers

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Each provider call is a client span ("<provider> <op>", such as "payment
// charge"), a child of the step attempt that makes it, and its request
// carries the span's context in a traceparent header, so a provider that
// traces too continues the order's trace.

// callKey names a kind of call.
type callKey struct{ provider, op string }

// callSpanNames are the span names of the calls, built once so that a call
// allocates nothing for them when tracing is off.
var callSpanNames = func() map[callKey]string {
	m := map[callKey]string{}
	for op, provider := range map[string]string{
		OpReserve: ProviderInventory, OpRelease: ProviderInventory,
		OpCharge: ProviderPayment, OpRefund: ProviderPayment,
		OpShip: ProviderShipping, OpTrack: ProviderShipping,
		OpAssess: ProviderRisk,
	} {
		m[callKey{provider, op}] = provider + " " + op
	}
	return m
}()

// startCall starts the span of x and puts its context into req's headers.
func (c *httpClient) startCall(ctx context.Context, x exchange) (context.Context, trace.Span) {
	name, ok := callSpanNames[callKey{x.provider, x.op}]
	if !ok {
		name = "provider call"
	}
	ctx, span := c.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("orderflow.provider", x.provider),
			attribute.String("orderflow.provider_op", x.op),
			attribute.String("http.request.method", x.method),
			attribute.String("url.full", x.url),
		)
		if x.key != "" {
			span.SetAttributes(attribute.String("orderflow.idempotency_key", x.key))
		}
	}
	return ctx, span
}

// inject writes the trace context of ctx into h (nothing when there is
// none).
func inject(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// endCall records the call's status (0: no answer) and error, and ends its
// span.
func endCall(span trace.Span, status int, err error) {
	if span.IsRecording() {
		if status > 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}
