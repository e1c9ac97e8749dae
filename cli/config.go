package cli

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

// workerFlags are the settings of a worker (worker, dev).
type workerFlags struct {
	concurrency       int
	lease             time.Duration
	retention         time.Duration
	shutdownTimeout   time.Duration
	taskCheckInterval time.Duration
	reaperInterval    time.Duration
}

func (w *workerFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&w.concurrency, "concurrency", 20, "tasks a worker runs at once")
	fs.DurationVar(&w.lease, "lease", 5*time.Second, "how long a worker holds an order without renewing; a dead worker's orders resume after it")
	fs.DurationVar(&w.retention, "retention", 168*time.Hour, "how long finished orders and their history are kept")
	fs.DurationVar(&w.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a stopping process waits for running work")
	fs.DurationVar(&w.taskCheckInterval, "task-check-interval", 100*time.Millisecond, "how often an idle worker polls its queues")
	fs.DurationVar(&w.reaperInterval, "reaper-interval", time.Second, "how often the reaper looks for orders whose worker died")
}

func (w *workerFlags) config() (server.WorkerConfig, error) {
	var errs []error
	if w.concurrency < 1 || w.concurrency > 10000 {
		errs = append(errs, fmt.Errorf("--concurrency must be 1 to 10000, got %d", w.concurrency))
	}
	if w.lease < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--lease must be at least 100ms, got %s", w.lease))
	}
	if w.retention < time.Minute {
		errs = append(errs, fmt.Errorf("--retention must be at least 1m, got %s", w.retention))
	}
	for name, d := range map[string]time.Duration{
		"--shutdown-timeout": w.shutdownTimeout, "--task-check-interval": w.taskCheckInterval, "--reaper-interval": w.reaperInterval,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return server.WorkerConfig{}, usageError{err}
	}
	c := server.WorkerConfig{
		Concurrency: w.concurrency, ShutdownTimeout: w.shutdownTimeout, TaskCheckInterval: w.taskCheckInterval,
	}
	c.Engine.Lease = w.lease
	c.Engine.ReaperInterval = w.reaperInterval
	c.Store.Retention = w.retention
	return c, nil
}

// providerFlags are the provider URLs of a worker.
type providerFlags struct {
	payment, inventory, shipping string
	timeout                      time.Duration
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.payment, "payment-url", "", "payment provider base URL")
	fs.StringVar(&p.inventory, "inventory-url", "", "inventory provider base URL")
	fs.StringVar(&p.shipping, "shipping-url", "", "shipping provider base URL")
	fs.DurationVar(&p.timeout, "provider-timeout", 5*time.Second, "timeout of every provider call")
}

func (p *providerFlags) config() providers.HTTPConfig {
	return providers.HTTPConfig{InventoryURL: p.inventory, PaymentURL: p.payment, ShippingURL: p.shipping, Timeout: p.timeout}
}

// simFlags are the simulators' fault knobs, one set per provider.
type simFlags struct {
	faults       map[string]*faultFlags
	initialStock int
	seed         uint64
}

type faultFlags struct {
	failureRate, timeoutRate, rateLimitRate float64
	latency, retryAfter                     time.Duration
	declineCustomers, declineSKUs           listFlag
}

func (s *simFlags) register(fs *flag.FlagSet) {
	s.faults = map[string]*faultFlags{}
	for _, p := range []string{providers.ProviderInventory, providers.ProviderPayment, providers.ProviderShipping} {
		f := &faultFlags{}
		s.faults[p] = f
		fs.Float64Var(&f.failureRate, p+"-failure-rate", 0, "sim: share of "+p+" calls answered 503 without effect (0..1)")
		fs.DurationVar(&f.latency, p+"-latency", 0, "sim: latency added to every "+p+" call")
		fs.Float64Var(&f.timeoutRate, p+"-timeout-rate", 0, "sim: share of "+p+" calls whose effect is applied but whose answer is lost (0..1)")
		fs.Float64Var(&f.rateLimitRate, p+"-rate-limit-rate", 0, "sim: share of "+p+" calls answered 429 (0..1)")
		fs.DurationVar(&f.retryAfter, p+"-retry-after", time.Second, "sim: Retry-After of "+p+"'s 429 answers")
		fs.Var(&f.declineCustomers, p+"-decline-customers", "sim: customers "+p+" declines permanently (comma-separated)")
		fs.Var(&f.declineSKUs, p+"-decline-skus", "sim: SKUs "+p+" declines permanently (comma-separated)")
	}
	fs.IntVar(&s.initialStock, "sim-initial-stock", 0, "sim: stock of every SKU before its first reservation; 0 is unlimited")
	fs.Uint64Var(&s.seed, "sim-seed", 0, "sim: seed of the fault dice; 0 is random")
}

func (s *simFlags) config() (providers.SimConfig, error) {
	mk := func(p string) providers.Faults {
		f := s.faults[p]
		return providers.Faults{
			FailureRate: f.failureRate, Latency: f.latency, TimeoutRate: f.timeoutRate,
			RateLimitRate: f.rateLimitRate, RetryAfter: f.retryAfter,
			DeclineCustomers: f.declineCustomers, DeclineSKUs: f.declineSKUs,
		}
	}
	c := providers.SimConfig{
		Inventory: mk(providers.ProviderInventory), Payment: mk(providers.ProviderPayment), Shipping: mk(providers.ProviderShipping),
		InitialStock: s.initialStock, Seed: s.seed,
	}
	if err := c.Validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}
