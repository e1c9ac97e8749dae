package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
)

func TestEnabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "OTLP"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, false},
	} {
		require.Equal(t, tc.want, Enabled(func(k string) string { return tc.env[k] }), "%v", tc.env)
	}
}

func TestCheckEnvRefusesWhatSetupCannotDo(t *testing.T) {
	t.Parallel()
	get := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	require.NoError(t, checkEnv(get(nil)))
	require.NoError(t, checkEnv(get(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})))
	require.ErrorContains(t, checkEnv(get(map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"})), "only otlp")
	require.ErrorContains(t, checkEnv(get(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})), "http/protobuf")
}

func TestTraceParentRoundTrip(t *testing.T) {
	t.Parallel()
	require.Empty(t, TraceParent(context.Background()))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := SpanContext(tp)
	require.True(t, sc.IsValid())
	require.True(t, sc.IsRemote())
	require.True(t, sc.IsSampled())
	ctx := ContextWithTraceParent(context.Background(), tp)
	require.Equal(t, tp, TraceParent(ctx))
	unsampled := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	require.Equal(t, unsampled, TraceParent(ContextWithTraceParent(context.Background(), unsampled)))
	for _, bad := range []string{"", "nope", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"} {
		require.False(t, SpanContext(bad).IsValid(), bad)
		require.Equal(t, context.Background(), ContextWithTraceParent(context.Background(), bad), bad)
	}
}

func TestTraceParentAllocatesNothingWhenOff(t *testing.T) {
	ctx := context.Background()
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = TraceParent(ctx) }))
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = SpanContext("") }))
}

// Without the variables Setup installs nothing; with an endpoint it exports
// spans to it over OTLP/HTTP, and its shutdown flushes them. (Not
// parallel: it sets the environment and the global provider.)
func TestSetup(t *testing.T) {
	before := otel.GetTracerProvider()
	shutdown, err := Setup(context.Background(), "orderflow-test")
	require.NoError(t, err)
	require.NoError(t, shutdown(context.Background()))
	require.Equal(t, before, otel.GetTracerProvider(), "nothing installed")

	posts := make(chan string, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		posts <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
	}))
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Cleanup(func() { otel.SetTracerProvider(before) })
	shutdown, err = Setup(context.Background(), "orderflow-test")
	require.NoError(t, err)
	_, span := Tracer(nil).Start(context.Background(), "a span")
	require.True(t, span.SpanContext().IsValid())
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, shutdown(ctx))
	select {
	case got := <-posts:
		require.Equal(t, "POST /v1/traces application/x-protobuf", got)
	case <-ctx.Done():
		t.Fatal("no spans were exported")
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "jaeger")
	_, err = Setup(context.Background(), "orderflow-test")
	require.Error(t, err)
}
