package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Each request is a server span named after its route, in the OpenAPI
// spelling ("POST /v1/orders/{order_id}/cancel"). It continues the caller's
// trace when the request carries a traceparent header, and it is the root
// of an order's trace: engine.Start writes its context into the order's
// first task and record (see package tracing).

// routeKey names a route.
type routeKey struct{ method, path string }

// requestTracer makes the requests' spans.
type requestTracer struct {
	t trace.Tracer
	// names are the span names of the routes, built once they are
	// registered (nameRoutes), so that a request allocates nothing for its
	// name.
	names map[routeKey]string
}

func newRequestTracer(t trace.Tracer) *requestTracer {
	return &requestTracer{t: t, names: map[routeKey]string{}}
}

// nameRoutes names the spans of routes; call it once every route is
// registered, before serving.
func (rt *requestTracer) nameRoutes(routes []*echo.Route) {
	for _, r := range routes {
		rt.names[routeKey{r.Method, r.Path}] = r.Method + " " + openAPIPath(r.Path)
	}
}

// openAPIPath spells an Echo route path as OpenAPI does: /v1/orders/:id
// is /v1/orders/{id}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// middleware is the Echo middleware; it must come first, so that the span
// sees the status of every answer, problems included.
func (rt *requestTracer) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		name, ok := rt.names[routeKey{req.Method, c.Path()}]
		if !ok {
			name = req.Method
		}
		ctx := propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
		ctx, span := rt.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		if span.SpanContext().IsValid() {
			c.SetRequest(req.WithContext(ctx))
		}
		if err := next(c); err != nil {
			// Answer now (the problem), so that the span has the status.
			c.Error(err)
		}
		if span.IsRecording() {
			status := c.Response().Status
			span.SetAttributes(
				attribute.String("http.request.method", req.Method),
				attribute.String("http.route", openAPIPath(c.Path())),
				attribute.String("url.path", req.URL.Path),
				attribute.Int("http.response.status_code", status),
			)
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		return nil
	}
}
