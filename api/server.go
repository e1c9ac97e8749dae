// Package api is orderflow's REST API (API.md): orders, their history,
// cancellation, health, metrics, and the asynqmon mount, served by Echo.
// Every error is an RFC 9457 problem; see problem.go for the one table that
// maps errors to statuses.
package api

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/statemachine"
)

// Config configures the API. Every field's comment gives its default.
type Config struct {
	// IdempotencyTTL is how long a completed Idempotency-Key is remembered
	// for replays. Default 24h.
	IdempotencyTTL time.Duration
	// IdempotencyInFlight is how long a claimed key blocks other requests
	// (409) if its request never finishes. Default 30s.
	IdempotencyInFlight time.Duration
	// ReadyTimeout bounds the Redis ping of /readyz. Default 1s.
	ReadyTimeout time.Duration
	// Logger receives request errors. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	c.IdempotencyTTL = cmp.Or(c.IdempotencyTTL, 24*time.Hour)
	c.IdempotencyInFlight = cmp.Or(c.IdempotencyInFlight, 30*time.Second)
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Deps are what the API works with.
type Deps struct {
	// Engine starts and signals orders; it needs no activities.
	Engine *engine.Engine
	// Gatherer serves /metrics; nil serves the default registry.
	Gatherer prometheus.Gatherer
	// Mounts are extra handlers under path prefixes, such as asynqmon at
	// "/monitor" and the dashboard at "/ui".
	Mounts map[string]http.Handler
}

// Server is the API's HTTP handler.
type Server struct {
	cfg     Config
	eng     *engine.Engine
	store   *statemachine.Store
	echo    *echo.Echo
	log     *slog.Logger
	waiters *finishWaiters
}

// New builds the API.
func New(cfg Config, deps Deps) *Server {
	cfg = cfg.WithDefaults()
	s := &Server{cfg: cfg, eng: deps.Engine, store: deps.Engine.Store(), log: cfg.Logger}
	s.waiters = newFinishWaiters(s.store.Redis(), s.log)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.log)
	e.Use(recoverProblems(s.log))

	e.POST("/v1/orders", s.createOrder)
	e.GET("/v1/orders", s.listOrders)
	e.GET("/v1/orders/:order_id", s.getOrder)
	e.GET("/v1/orders/:order_id/history", s.getHistory)
	e.POST("/v1/orders/:order_id/cancel", s.cancelOrder)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	g := deps.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{})))
	for prefix, h := range deps.Mounts {
		e.Any(prefix, echo.WrapHandler(h))
		e.Any(prefix+"/*", echo.WrapHandler(h))
	}
	s.echo = e
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Close releases what the server holds (the subscription behind ?wait).
func (s *Server) Close() { s.waiters.close() }

// recoverProblems turns a panic into a logged 500 problem.
func recoverProblems(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					log.Error("panic in handler", "panic", r, "path", c.Path())
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
