package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

func runDev(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("dev", "The whole system in one process, on an embedded miniredis unless --redis-url is set.", env.Stderr)
	var r redisFlags
	r.register(fs)
	r.registerShards(fs)
	fs.Lookup("redis-url").Usage += "; without it, --redis-cluster or --redis-sentinel, dev embeds miniredis"
	simListen := fs.String("sim-listen", "127.0.0.1:0", "simulators address (port 0 picks a free one)")
	var a apiFlags
	var w workerFlags
	var fl flowFlags
	var p providerFlags
	var s simFlags
	var l logFlags
	var dur durabilityFlag
	var wf workflowFlags
	a.register(fs)
	w.register(fs)
	fl.register(fs)
	p.register(fs)
	s.register(fs)
	l.register(fs, "text")
	dur.register(fs, "none")
	wf.register(fs, true, true)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	log, err := l.logger(env.Stderr)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, "orderflow-dev", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	wc, err := w.config()
	if err != nil {
		return err
	}
	if wc.Store.Durability, err = dur.config(); err != nil {
		return err
	}
	if wc.Registry, err = wf.registry(); err != nil {
		return err
	}
	if wc.Flow, err = fl.config(); err != nil {
		return err
	}
	sc, err := s.config()
	if err != nil {
		return err
	}
	ac, err := a.config()
	if err != nil {
		return err
	}
	if r.url != "" {
		if _, err := server.ParseRedisURL(r.url); err != nil {
			return usageError{err}
		}
	}
	wc.Store.Shards = max(r.shards, 0)
	d, err := server.StartDev(server.DevConfig{
		Redis: r.config(0), SimListen: *simListen, Providers: p.config(), Sim: sc,
		API: ac, Worker: wc, Logger: log,
	})
	if err != nil {
		return err
	}
	authHeader := ""
	if len(ac.API.Tokens) > 0 {
		authHeader = " -H 'Authorization: Bearer <secret>'"
	}
	fmt.Fprintf(env.Stdout, "orderflow dev is running:\n  %s\n\nTry:\n  curl -s -X POST %s/v1/orders -H 'Content-Type: application/json'%s \\\n    -d '{\"customer_id\":\"cust-42\",\"currency\":\"USD\",\"items\":[{\"sku\":\"SKU-ABC\",\"qty\":2,\"unit_price_cents\":2499}]}'\n\nPress Ctrl-C to stop.\n",
		strings.Join(d.URLs(), "\n  "), d.APIURL(), authHeader)
	return waitAndShutdown(ctx, log, wc.ShutdownTimeout+5*time.Second, d.Shutdown)
}

func runAPI(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("api", "The REST API and asynqmon (at /monitor/).", env.Stderr)
	retention := fs.Duration("retention", 168*time.Hour, "how long finished orders and their history are kept")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long a stopping process waits for running requests")
	var r redisFlags
	var a apiFlags
	var l logFlags
	var dur durabilityFlag
	var wf workflowFlags
	r.register(fs)
	r.registerShards(fs)
	a.register(fs)
	l.register(fs, "json")
	dur.register(fs, "fsync")
	wf.register(fs, true, false)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	log, err := l.logger(env.Stderr)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, "orderflow-api", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if *retention < time.Minute || *shutdownTimeout <= 0 {
		return usageError{errors.New("--retention must be at least 1m and --shutdown-timeout positive")}
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	if cfg.Store.Durability, err = dur.config(); err != nil {
		return err
	}
	if cfg.Registry, err = wf.registry(); err != nil {
		return err
	}
	conn, err := r.open(ctx, 0)
	if err != nil {
		return err
	}
	defer conn.Close()
	if cfg.Store.Shards, err = r.resolveShards(ctx, conn, log); err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Store.Retention = *retention
	server.CheckDurability(ctx, conn.Client, cfg.Store.Durability, log)
	p, err := server.StartAPI(conn, cfg, newRegistry())
	if err != nil {
		return err
	}
	log.Info("api listening", "url", p.URL(), "tokens", len(cfg.API.Tokens))
	return waitAndShutdown(ctx, log, *shutdownTimeout, p.Shutdown)
}

func runWorker(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("worker", "A worker: runs workflow steps from the queues against the providers.", env.Stderr)
	metricsListen := fs.String("metrics-listen", "", "address to serve /metrics, /healthz and /readyz on; empty serves none")
	var r redisFlags
	var w workerFlags
	var fl flowFlags
	var p providerFlags
	var l logFlags
	var dur durabilityFlag
	var wf workflowFlags
	r.register(fs)
	r.registerShards(fs)
	w.register(fs)
	fl.register(fs)
	p.register(fs)
	l.register(fs, "json")
	dur.register(fs, "fsync")
	wf.register(fs, false, true)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	log, err := l.logger(env.Stderr)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, "orderflow-worker", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	wc, err := w.config()
	if err != nil {
		return err
	}
	if wc.Store.Durability, err = dur.config(); err != nil {
		return err
	}
	if wc.Registry, err = wf.registry(); err != nil {
		return err
	}
	if wc.Flow, err = fl.config(); err != nil {
		return err
	}
	wc.Logger = log
	var missing []error
	if !r.given() {
		missing = append(missing, errNoRedis.err)
	}
	for _, f := range []struct{ flag, val string }{{"payment-url", p.payment}, {"inventory-url", p.inventory}, {"shipping-url", p.shipping}} {
		if f.val == "" {
			missing = append(missing, fmt.Errorf("--%s is required (or %s)", f.flag, EnvName(f.flag)))
		}
	}
	if len(missing) > 0 {
		return usageError{errors.Join(missing...)}
	}
	prov, err := providers.NewHTTP(p.config())
	if err != nil {
		return usageError{err}
	}
	conn, err := r.open(ctx, 2*wc.Concurrency+20)
	if err != nil {
		return err
	}
	defer conn.Close()
	if wc.Store.Shards, err = r.resolveShards(ctx, conn, log); err != nil {
		return err
	}
	reg := newRegistry()
	worker, err := server.NewWorker(conn.Client, prov, wc, reg)
	if err != nil {
		return err
	}
	if err := worker.Start(); err != nil {
		return err
	}
	var metrics *server.HTTPService
	if *metricsListen != "" {
		if metrics, err = server.ListenHTTP(*metricsListen, server.HealthHandler(reg, worker.Ping), log); err != nil {
			worker.Shutdown()
			return err
		}
		log.Info("metrics listening", "url", metrics.URL()+"/metrics")
	}
	return waitAndShutdown(ctx, log, wc.ShutdownTimeout+5*time.Second, func(sctx context.Context) error {
		worker.Shutdown()
		if metrics != nil {
			return metrics.Shutdown(sctx)
		}
		return nil
	})
}

func runSim(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("sim", "The provider simulators over HTTP, with their ledgers in Redis.", env.Stderr)
	listen := fs.String("sim-listen", "127.0.0.1:8081", "simulators address")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long a stopping process waits for running requests")
	var r redisFlags
	var s simFlags
	var l logFlags
	r.register(fs)
	s.register(fs)
	l.register(fs, "json")
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	log, err := l.logger(env.Stderr)
	if err != nil {
		return err
	}
	sc, err := s.config()
	if err != nil {
		return err
	}
	conn, err := r.open(ctx, 0)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := server.StartSim(conn.Client, *listen, sc, log)
	if err != nil {
		return err
	}
	log.Info("simulators listening", "inventory", p.URL()+"/inventory", "payment", p.URL()+"/payment", "shipping", p.URL()+"/shipping",
		"risk", p.URL()+"/risk")
	return waitAndShutdown(ctx, log, *shutdownTimeout, p.Shutdown)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
