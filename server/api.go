package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
	"github.com/orderflow/orderflow/web"
)

// APIConfig configures an API process.
type APIConfig struct {
	// Listen is the address to serve on. Default 127.0.0.1:8080.
	Listen string
	// MonitorWritable allows actions in asynqmon; by default it is
	// read-only.
	MonitorWritable bool
	// API configures the handlers.
	API api.Config
	// Engine configures the pickup deadline of new orders.
	Engine engine.Config
	// Store configures retention.
	Store statemachine.StoreConfig
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
}

// APIProcess is a running API: orders, health, metrics and asynqmon.
type APIProcess struct {
	api     *api.Server
	http    *HTTPService
	monitor *asynqmon.HTTPHandler
	store   *statemachine.Store
}

// StartAPI serves the API over conn until Shutdown.
func StartAPI(conn *RedisConn, cfg APIConfig, reg *prometheus.Registry) (*APIProcess, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	cfg.API.Logger = cfg.Logger
	cfg.Engine.Logger = cfg.Logger
	store := statemachine.NewStore(conn.Client, cfg.Store)
	eng, err := engine.New(cfg.Engine, store, statemachine.NewOrderRegistry(), nil, tasks.NewQueue(conn.Client, tasks.QueueConfig{}), nil)
	if err != nil {
		store.Close()
		return nil, err
	}
	monitor := web.NewMonitor(conn, !cfg.MonitorWritable)
	var gatherer prometheus.Gatherer
	if reg != nil {
		gatherer = reg
	}
	h := api.New(cfg.API, api.Deps{
		Engine: eng, Gatherer: gatherer,
		Mounts: map[string]http.Handler{web.MonitorPath: monitor},
	})
	svc, err := ListenHTTP(cfg.Listen, h, cfg.Logger)
	if err != nil {
		_ = monitor.Close()
		store.Close()
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	return &APIProcess{api: h, http: svc, monitor: monitor, store: store}, nil
}

// URL returns the API's base URL.
func (p *APIProcess) URL() string { return p.http.URL() }

// Shutdown stops serving, waiting for running requests until ctx ends.
func (p *APIProcess) Shutdown(ctx context.Context) error {
	err := p.http.Shutdown(ctx)
	p.api.Close()
	_ = p.monitor.Close()
	p.store.Close()
	return err
}
