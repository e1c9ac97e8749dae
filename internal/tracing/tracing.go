// Package tracing is orderflow's OpenTelemetry plumbing: Setup installs an
// OTLP/HTTP exporter when the standard OTEL_* environment variables ask for
// one, and the helpers carry a W3C trace context through places that are not
// HTTP requests: the asynq task payload and the order's record.
//
// # Off by default
//
// Without OTEL_TRACES_EXPORTER=otlp or an OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT,
// Setup installs nothing and every tracer the code asks for is OpenTelemetry's
// global no-op: a span costs a context value and no export. The components
// take a trace.TracerProvider in their configs (nil means the global one), so
// that tests record spans without touching globals.
//
// # One order, one trace
//
// The API request's span is the root. Its context is written into the first
// task's payload and into the order's record (TraceParent), so that every
// advance of the order, whichever task, worker or wake-up drives it, is a
// span of the same trace; the step attempts and the provider calls are its
// children.
package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names orderflow's tracers.
const InstrumentationName = "github.com/orderflow/orderflow"

// Tracer returns orderflow's tracer from tp, or from the global provider
// when tp is nil.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(InstrumentationName)
}

// Enabled reports whether the environment, read with getenv, asks for an
// OTLP trace exporter: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint with
// OTEL_TRACES_EXPORTER unset. OTEL_SDK_DISABLED=true and
// OTEL_TRACES_EXPORTER=none turn it off.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "otlp":
		return true
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return false
	}
}

// checkEnv refuses settings Setup cannot honour, rather than dropping the
// traces silently: another exporter than otlp, or OTLP over gRPC.
func checkEnv(getenv func(string) string) error {
	var errs []error
	if exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp != "" && exp != "otlp" && exp != "none" {
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp (or none) is supported", exp))
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(v)); p != "" && p != "http/protobuf" {
			errs = append(errs, fmt.Errorf("%s=%q: only http/protobuf is supported", v, p))
		}
	}
	return errors.Join(errs...)
}

// Setup installs a global tracer provider that exports spans over OTLP/HTTP
// when the OTEL_* environment variables ask for it (see Enabled), naming the
// process service (such as "orderflow-api") unless OTEL_SERVICE_NAME does.
// The exporter, the sampler (OTEL_TRACES_SAMPLER) and the resource
// (OTEL_RESOURCE_ATTRIBUTES) follow the standard variables. It also installs
// the W3C trace-context propagator. Without such variables it installs
// nothing and returns a no-op shutdown.
//
// The returned shutdown flushes the spans still buffered; call it when the
// process stops.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if err := checkEnv(os.Getenv); err != nil {
		return noop, err
	}
	if !Enabled(os.Getenv) {
		return noop, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return noop, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return noop, fmt.Errorf("describing the process for traces: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}

// TraceParent returns the W3C traceparent header value of the span in ctx,
// or "" when ctx carries no valid span context. It allocates nothing when
// there is none (tracing off).
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// SpanContext parses a W3C traceparent value into a remote span context;
// the result is invalid when tp is empty or malformed.
func SpanContext(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// ContextWithTraceParent returns ctx with the remote span context that tp
// names as its parent, or ctx itself when tp is empty or malformed.
func ContextWithTraceParent(ctx context.Context, tp string) context.Context {
	sc := SpanContext(tp)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}
