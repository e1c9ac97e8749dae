package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/web"
)

// DevConfig configures `orderflow dev`: the whole system in one process.
type DevConfig struct {
	// RedisURL is the Redis to use. Empty: Redis, or else an embedded
	// miniredis.
	RedisURL string
	// RedisCAFile, RedisCertFile and RedisKeyFile configure TLS for a
	// rediss:// RedisURL (see RedisConfig).
	RedisCAFile, RedisCertFile, RedisKeyFile string
	// Redis is the Redis to use when RedisURL is empty: a cluster, a
	// Sentinel-managed master, or a URL with separate credentials. Empty
	// (no URL, Cluster or Sentinel): an embedded miniredis.
	Redis RedisConfig
	// SimListen is where the provider simulators listen. Default
	// 127.0.0.1:0 (a free port).
	SimListen string
	// Providers, when its URLs are set, points the worker at real
	// providers instead of the built-in simulators.
	Providers providers.HTTPConfig
	// Sim configures the simulators' faults.
	Sim providers.SimConfig
	// API and Worker configure the API and the worker.
	API    APIConfig
	Worker WorkerConfig
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, makes the spans of the API, the worker and
	// the provider calls, unless their own configs name another. Default:
	// OpenTelemetry's global provider (see package tracing).
	TracerProvider trace.TracerProvider
}

// Dev is a running `orderflow dev`.
type Dev struct {
	mini   *miniredis.Miniredis
	conn   *RedisConn
	sim    *SimProcess
	api    *APIProcess
	worker *Worker
}

// StartDev starts Redis (embedded unless configured), the simulators, a
// worker and the API, in that order.
func StartDev(cfg DevConfig) (_ *Dev, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Dev{}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = d.Shutdown(ctx)
		}
	}()
	rc := cfg.Redis
	if cfg.RedisURL != "" {
		rc = RedisConfig{URL: cfg.RedisURL, CAFile: cfg.RedisCAFile, CertFile: cfg.RedisCertFile, KeyFile: cfg.RedisKeyFile}
	}
	if rc.URL == "" && rc.Cluster == "" && rc.Sentinel == "" {
		d.mini = miniredis.NewMiniRedis()
		d.mini.ClockTTL(true)
		if err := d.mini.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("starting embedded redis: %w", err)
		}
		rc.URL = "redis://" + d.mini.Addr()
	}
	rc.PoolSize = 2*cfg.Worker.WithDefaults().Concurrency + 20
	if d.conn, err = rc.Open(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if tp := cfg.TracerProvider; tp != nil {
		for _, p := range []*trace.TracerProvider{&cfg.API.API.TracerProvider, &cfg.Worker.Engine.TracerProvider, &cfg.Providers.TracerProvider} {
			if *p == nil {
				*p = tp
			}
		}
	}
	provCfg := cfg.Providers
	if provCfg.InventoryURL == "" || provCfg.PaymentURL == "" || provCfg.ShippingURL == "" {
		listen := cfg.SimListen
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		if d.sim, err = StartSim(d.conn.Client, listen, cfg.Sim, cfg.Logger.With("component", "sim")); err != nil {
			return nil, err
		}
		sc := d.sim.HTTPConfig()
		sc.Timeout, sc.TracerProvider = provCfg.Timeout, provCfg.TracerProvider
		provCfg = sc
	}
	prov, err := providers.NewHTTP(provCfg)
	if err != nil {
		return nil, err
	}
	cfg.Worker.Logger = cfg.Logger.With("component", "worker")
	if d.worker, err = NewWorker(d.conn.Client, prov, cfg.Worker, reg); err != nil {
		return nil, err
	}
	if err = d.worker.Start(); err != nil {
		d.worker = nil
		return nil, err
	}
	cfg.API.Logger = cfg.Logger.With("component", "api")
	cfg.API.Engine.PickupGrace = cfg.Worker.Engine.PickupGrace
	cfg.API.Store = cfg.Worker.Store
	cfg.API.Registry = cfg.Worker.Registry
	if d.api, err = StartAPI(d.conn, cfg.API, reg); err != nil {
		return nil, err
	}
	return d, nil
}

// URLs returns what the process serves, for printing.
func (d *Dev) URLs() []string {
	out := []string{
		"api:       " + d.api.URL() + "/v1/orders",
		"dashboard: " + d.api.URL() + web.UIPath + "/",
		"asynqmon:  " + d.api.URL() + "/monitor/",
		"metrics:   " + d.api.URL() + "/metrics",
	}
	if d.sim != nil {
		out = append(out, "providers: "+d.sim.URL()+" (simulators: /inventory, /payment, /shipping, /risk)")
	}
	if d.mini != nil {
		out = append(out, "redis:     redis://"+d.mini.Addr()+" (embedded miniredis; data is lost on exit)")
	}
	return out
}

// APIURL returns the API's base URL.
func (d *Dev) APIURL() string { return d.api.URL() }

// SimURL returns the simulators' base URL, or "" with external providers.
func (d *Dev) SimURL() string {
	if d.sim == nil {
		return ""
	}
	return d.sim.URL()
}

// Redis returns the shared Redis connection.
func (d *Dev) Redis() *RedisConn { return d.conn }

// Shutdown stops the API first (no new orders), then the worker (running
// steps finish or are handed back), then the simulators and Redis.
func (d *Dev) Shutdown(ctx context.Context) error {
	var errs []error
	if d.api != nil {
		errs = append(errs, d.api.Shutdown(ctx))
	}
	if d.worker != nil {
		d.worker.Shutdown()
	}
	if d.sim != nil {
		errs = append(errs, d.sim.Shutdown(ctx))
	}
	if d.conn != nil {
		errs = append(errs, d.conn.Close())
	}
	if d.mini != nil {
		d.mini.Close()
	}
	return errors.Join(errs...)
}
