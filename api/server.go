// Package api is orderflow's REST API (API.md): orders, their history,
// cancellation, the audit, health, metrics, and the asynqmon mount, served
// by Echo. Every error is an RFC 9457 problem; see problem.go for the one
// table that maps errors to statuses.
//
// # Security and limits
//
// With Config.Tokens set, every route but /healthz and /readyz needs
// "Authorization: Bearer <secret>" (auth.go), and each route a scope
// (orders:write, orders:read, admin; tokens.go). Each token is rate limited
// in Redis (ratelimit.go), and new orders are shed while the workflow
// queue's backlog is over a bound (backlog.go). Without tokens nothing is
// authenticated or rate limited: serve on loopback only (see
// server.APIConfig), with Config.RestrictHosts against DNS rebinding.
//
// In every mode, a request that changes something must be one a web page
// cannot forge across sites (forgery.go): a JSON body or none, and no
// browser's cross-site marks.
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/tracing"
	"github.com/orderflow/orderflow/statemachine"
)

// Config configures the API. Every field's comment gives its default.
type Config struct {
	// IdempotencyTTL is how long an Idempotency-Key stays bound to the
	// order its first request named, counted from that request. Default
	// 24h.
	IdempotencyTTL time.Duration
	// RestrictHosts refuses (403) every request but /healthz whose Host is
	// not a loopback name or address, against DNS rebinding. Set it when
	// the API serves on loopback without tokens. Default false.
	RestrictHosts bool
	// ReadyTimeout bounds the Redis ping of /readyz. Default 1s.
	ReadyTimeout time.Duration
	// Tokens are the API's clients. Default none: no authentication.
	Tokens []Token
	// RateLimit is how many requests per second each token may send, on
	// average. Default 100; negative: no limit.
	RateLimit int
	// RateBurst is how many requests a token may send at once. Default
	// 200.
	RateBurst int
	// MaxBacklog is the number of pending tasks in the workflow queue above
	// which POST /v1/orders answers 503. Default 50000; negative: never.
	MaxBacklog int
	// BacklogInterval is how often the backlog is read. Default 500ms.
	BacklogInterval time.Duration
	// Logger receives request errors. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider makes the requests' spans (tracing.go). Default:
	// OpenTelemetry's global provider, a no-op unless tracing.Setup
	// installed one.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	c.IdempotencyTTL = cmp.Or(c.IdempotencyTTL, 24*time.Hour)
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, time.Second)
	c.RateLimit = cmp.Or(c.RateLimit, 100)
	c.RateBurst = cmp.Or(c.RateBurst, 200)
	c.MaxBacklog = cmp.Or(c.MaxBacklog, 50000)
	c.BacklogInterval = cmp.Or(c.BacklogInterval, 500*time.Millisecond)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the tokens and the limits; errors name the field.
func (c Config) Validate() error {
	var errs []error
	if err := ValidateTokens(c.Tokens); err != nil {
		errs = append(errs, fmt.Errorf("Tokens: %w", err))
	}
	if c.RateBurst < 0 {
		errs = append(errs, fmt.Errorf("RateBurst must not be negative, got %d", c.RateBurst))
	}
	if c.BacklogInterval < 0 {
		errs = append(errs, fmt.Errorf("BacklogInterval must not be negative, got %s", c.BacklogInterval))
	}
	return errors.Join(errs...)
}

// Deps are what the API works with.
type Deps struct {
	// Engine starts and signals orders; it needs no activities.
	Engine *engine.Engine
	// Gatherer serves /metrics; nil serves the default registry.
	Gatherer prometheus.Gatherer
	// Mounts are extra handlers under path prefixes, such as asynqmon at
	// "/monitor"; they need the admin scope.
	Mounts map[string]http.Handler
	// UI serves the dashboard's static pages at UIPath, without a token
	// (see dashboard.go); nil serves none.
	UI http.Handler
}

// Server is the API's HTTP handler.
type Server struct {
	cfg     Config
	eng     *engine.Engine
	store   *statemachine.Store
	echo    *echo.Echo
	log     *slog.Logger
	waiters *finishWaiters
	auth    *authenticator
	limiter *rateLimiter
	backlog *backlog
	// providers reads and changes the providers' flow-control state.
	providers *flowcontrol.Admin
	dash      *dashboard
}

// New builds the API; cfg should pass Validate. It starts following the
// workflow queue's backlog: call Close when done.
func New(cfg Config, deps Deps) *Server {
	cfg = cfg.WithDefaults()
	rdb := deps.Engine.Store().Redis()
	s := &Server{
		cfg: cfg, eng: deps.Engine, store: deps.Engine.Store(), log: cfg.Logger,
		auth:      newAuthenticator(cfg.Tokens),
		limiter:   newRateLimiter(rdb, cfg.RateLimit, cfg.RateBurst),
		backlog:   startBacklog(rdb, statemachine.DefaultQueue, cfg.MaxBacklog, cfg.BacklogInterval, cfg.Logger),
		providers: flowcontrol.NewAdmin(rdb, nil),
	}
	s.waiters = newFinishWaiters(s.store, s.log)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.log)
	rt := newRequestTracer(tracing.Tracer(cfg.TracerProvider))
	e.Use(rt.middleware, recoverProblems(s.log), s.restrictHosts, refuseBrowserForgery, s.authenticate, s.rateLimit)

	write, read, admin := s.authorize(ScopeOrdersWrite), s.authorize(ScopeOrdersRead), s.authorize(ScopeAdmin)
	e.POST("/v1/orders", s.createOrder, write, s.shed)
	e.GET("/v1/orders", s.listOrders, read)
	e.GET("/v1/orders/:order_id", s.getOrder, read)
	e.GET("/v1/orders/:order_id/history", s.getHistory, read)
	for _, sig := range signals {
		e.POST("/v1/orders/:order_id/"+sig, s.signalOrder(sig), write)
	}
	e.POST("/v1/orders/:order_id/retry", s.retryOrder, admin)
	e.POST("/v1/orders/:order_id/resolve", s.resolveOrder, admin)
	e.GET("/v1/audit", s.getAudit, admin)
	e.GET("/v1/providers", s.listProviders, read)
	e.POST("/v1/providers/:name/pause", s.pauseProvider, admin)
	e.POST("/v1/providers/:name/resume", s.resumeProvider, admin)
	s.dash = s.routeDashboard(e, read, deps.UI)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.yaml", serveOpenAPIYAML)
	e.GET("/openapi.json", serveOpenAPIJSON)

	g := deps.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{})), admin)
	for prefix, h := range deps.Mounts {
		e.Any(prefix, echo.WrapHandler(h), admin)
		e.Any(prefix+"/*", echo.WrapHandler(h), admin)
	}
	rt.nameRoutes(e.Routes())
	s.echo = e
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Close releases what the server holds: the subscription behind ?wait,
// the backlog refresher and the event streams.
func (s *Server) Close() {
	s.dash.close()
	s.backlog.stop()
	s.waiters.close()
}

// recoverProblems turns a panic into a logged 500 problem.
func recoverProblems(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					requestLog(log, c).Error("panic in handler", "panic", r, "path", c.Path())
					err = problem(http.StatusInternalServerError, codeInternal, "Internal error", "internal error")
				}
			}()
			return next(c)
		}
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		p := unavailable("redis does not answer: " + err.Error())
		p.Title = "Not ready"
		return writeProblem(c, p)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
