package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

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
	// Listen is the address to serve on. Default 127.0.0.1:8080. Without
	// API.Tokens it must be a loopback address, unless InsecureListen.
	Listen string
	// InsecureListen allows serving without tokens on an address other
	// than loopback: anyone who reaches it can create, cancel and read
	// orders and use asynqmon. Default false. Without tokens and without
	// it, the API also refuses requests whose Host is not loopback
	// (api.Config.RestrictHosts), against DNS rebinding.
	InsecureListen bool
	// MonitorWritable allows actions in asynqmon; by default it is
	// read-only.
	MonitorWritable bool
	// API configures the handlers.
	API api.Config
	// Engine configures the pickup deadline of new orders.
	Engine engine.Config
	// Store configures retention.
	Store statemachine.StoreConfig
	// Registry holds the workflow versions new orders start under (and
	// whose retry policies they record). Default
	// statemachine.NewOrderRegistry().
	Registry *statemachine.Registry
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
}

// ErrInsecureListen is returned for a non-loopback Listen without tokens
// and without InsecureListen.
var ErrInsecureListen = errors.New("serving without API tokens on an address other than loopback")

// Validate checks the config: the API's tokens and limits, and that an API
// without tokens listens on loopback only.
func (c APIConfig) Validate() error {
	if err := c.API.Validate(); err != nil {
		return err
	}
	if len(c.API.Tokens) == 0 && !c.InsecureListen && !isLoopback(cmp.Or(c.Listen, defaultListen)) {
		return fmt.Errorf("%w (listen %s)", ErrInsecureListen, c.Listen)
	}
	return nil
}

// isLoopback reports whether addr (host:port) can only be reached from this
// machine: a loopback IP or "localhost". An empty host means every
// interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

const defaultListen = "127.0.0.1:8080"

// APIProcess is a running API: orders, health, metrics, the dashboard and
// asynqmon.
type APIProcess struct {
	api     *api.Server
	http    *HTTPService
	monitor *asynqmon.HTTPHandler
	store   *statemachine.Store
}

// StartAPI checks cfg (Validate) and serves the API over conn until
// Shutdown. reg, when set, is served at /metrics, with the task queues'
// metrics added (tasks.QueueCollector).
func StartAPI(conn *RedisConn, cfg APIConfig, reg *prometheus.Registry) (*APIProcess, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Listen = cmp.Or(cfg.Listen, defaultListen)
	cfg.API.Logger = cfg.Logger
	if len(cfg.API.Tokens) == 0 && !cfg.InsecureListen {
		// Loopback without tokens: a browser on this machine is the one
		// caller that could be tricked, through DNS rebinding, into
		// reaching the API under a foreign name.
		cfg.API.RestrictHosts = true
	}
	cfg.Engine.Logger = cfg.Logger
	store := statemachine.NewStore(conn.Client, cfg.Store)
	registry := cfg.Registry
	if registry == nil {
		registry = statemachine.NewOrderRegistry()
	}
	eng, err := engine.New(cfg.Engine, store, registry, nil, tasks.NewQueue(conn.Client, tasks.QueueConfig{}), nil)
	if err != nil {
		store.Close()
		return nil, err
	}
	monitor := web.NewMonitor(conn.MonitorOpt(), !cfg.MonitorWritable)
	var gatherer prometheus.Gatherer
	if reg != nil {
		gatherer = reg
		// The queues are the system's, not this process's: the API shows
		// them, the workers do not.
		if err := reg.Register(tasks.NewQueueCollector(conn.Client, cfg.Logger)); err != nil {
			cfg.Logger.Warn("the task queues' metrics are not served", "err", err)
		}
		// So are the orders: orderflow_orders_running (orders_metrics.go).
		if err := reg.Register(newRunningCollector(store, registry, cfg.Logger)); err != nil {
			cfg.Logger.Warn("the running orders' metrics are not served", "err", err)
		}
	}
	h := api.New(cfg.API, api.Deps{
		Engine: eng, Gatherer: gatherer,
		Mounts: map[string]http.Handler{web.MonitorPath: monitor},
		UI:     web.NewUI(),
	})
	svc, err := ListenHTTP(cfg.Listen, h, cfg.Logger)
	if err != nil {
		_ = monitor.Close()
		store.Close()
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	svc.OnShutdown(h.CloseStreams) // event streams never end by themselves
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
