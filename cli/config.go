package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// workerFlags are the settings of a worker (worker, dev).
type workerFlags struct {
	queues            string
	concurrency       int
	lease             time.Duration
	retention         time.Duration
	shutdownTimeout   time.Duration
	taskCheckInterval time.Duration
	reaperInterval    time.Duration
}

func (w *workerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.queues, "queues", "", "the queues the worker serves, with weights, such as payments=6,inventory=3 (default: every queue, weight 1); "+
		"each is served at every priority")
	fs.IntVar(&w.concurrency, "concurrency", 20, "tasks a worker runs at once")
	fs.DurationVar(&w.lease, "lease", 5*time.Second, "how long a worker holds an order without renewing; a dead worker's orders resume after it")
	fs.DurationVar(&w.retention, "retention", 168*time.Hour, "how long finished orders and their history are kept")
	fs.DurationVar(&w.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a stopping process waits for running work")
	fs.DurationVar(&w.taskCheckInterval, "task-check-interval", 200*time.Millisecond, "how often an idle worker polls its queues (the wake lists carry new work at once; this is the fallback)")
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
	queues, err := parseQueues(w.queues, statemachine.NewOrderRegistry().Queues())
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return server.WorkerConfig{}, usageError{err}
	}
	c := server.WorkerConfig{
		Concurrency: w.concurrency, ShutdownTimeout: w.shutdownTimeout, TaskCheckInterval: w.taskCheckInterval, Queues: queues,
	}
	c.Engine.Lease = w.lease
	c.Engine.ReaperInterval = w.reaperInterval
	c.Store.Retention = w.retention
	return c, nil
}

// parseQueues reads --queues, "name=weight,..." (a bare name has weight
// 1), with names from known; "" is nil (every queue).
func parseQueues(s string, known []string) (map[string]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, weight, hasWeight := strings.Cut(strings.TrimSpace(part), "=")
		w := 1
		if hasWeight {
			n, err := strconv.Atoi(weight)
			if err != nil || n < 1 || n > 100 {
				return nil, fmt.Errorf("--queues: weight of %q must be 1 to 100, got %q", name, weight)
			}
			w = n
		}
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("--queues: unknown queue %q (known: %s)", name, strings.Join(known, ", "))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--queues: %q named twice", name)
		}
		out[name] = w
	}
	return out, nil
}

// durabilityFlag is --durability, for the processes that write orders (api,
// worker, dev).
type durabilityFlag struct{ value string }

func (d *durabilityFlag) register(fs *flag.FlagSet, def string) {
	fs.StringVar(&d.value, "durability", def, "how sure a Redis write must be before an effect follows it or an order is acknowledged: "+
		"none, fsync (check that Redis runs appendfsync always; warn otherwise) or replicas=N (WAIT, or WAITAOF on Redis 7.2+, for N replicas)")
}

func (d *durabilityFlag) config() (statemachine.Durability, error) {
	v, err := statemachine.ParseDurability(d.value)
	if err != nil {
		return v, usageError{fmt.Errorf("--durability: %w", err)}
	}
	return v, nil
}

// providerFlags are the provider URLs of a worker.
type providerFlags struct {
	payment, inventory, shipping, risk string
	timeout                            time.Duration
}

func (p *providerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.payment, "payment-url", "", "payment provider base URL")
	fs.StringVar(&p.inventory, "inventory-url", "", "inventory provider base URL")
	fs.StringVar(&p.shipping, "shipping-url", "", "shipping provider base URL")
	fs.StringVar(&p.risk, "risk-url", "", "risk-assessment agent base URL (workflow v2; without it, risk assessments fail)")
	fs.DurationVar(&p.timeout, "provider-timeout", 5*time.Second, "timeout of every provider call")
}

func (p *providerFlags) config() providers.HTTPConfig {
	return providers.HTTPConfig{InventoryURL: p.inventory, PaymentURL: p.payment, ShippingURL: p.shipping, RiskURL: p.risk, Timeout: p.timeout}
}

// defaultSimShippingDuration is how long a simulated long-running shipment
// takes by default (--shipping-duration).
const defaultSimShippingDuration = 3 * time.Second

// simFlags are the simulators' fault knobs, one set per provider, and the
// knobs of one provider each: risk's decision rules, inventory's
// warehouses out of stock, shipping's shipment duration.
type simFlags struct {
	faults       map[string]*faultFlags
	initialStock int
	seed         uint64
	callLog      bool

	riskReviewCustomers, riskRejectCustomers listFlag
	riskReviewAbove, riskRejectAbove         int64
	outOfStockWarehouses                     listFlag
	shippingDuration                         time.Duration
}

type faultFlags struct {
	failureRate, timeoutRate, rateLimitRate float64
	inProgressRate, strayRate               float64
	latency, retryAfter, inProgressHold     time.Duration
	declineCustomers, declineSKUs, broken   listFlag
}

func (s *simFlags) register(fs *flag.FlagSet) {
	s.faults = map[string]*faultFlags{}
	for _, p := range []string{providers.ProviderInventory, providers.ProviderPayment, providers.ProviderShipping, providers.ProviderRisk} {
		f := &faultFlags{}
		s.faults[p] = f
		fs.Float64Var(&f.failureRate, p+"-failure-rate", 0, "sim: share of "+p+" calls answered 503 without effect (0..1)")
		fs.DurationVar(&f.latency, p+"-latency", 0, "sim: latency added to every "+p+" call")
		fs.Float64Var(&f.timeoutRate, p+"-timeout-rate", 0, "sim: share of "+p+" calls whose effect is applied but whose answer is lost (0..1)")
		fs.Float64Var(&f.rateLimitRate, p+"-rate-limit-rate", 0, "sim: share of "+p+" calls answered 429 (0..1)")
		fs.DurationVar(&f.retryAfter, p+"-retry-after", time.Second, "sim: Retry-After of "+p+"'s 429 answers")
		if p != providers.ProviderRisk { // the agent has no decline
			fs.Var(&f.declineCustomers, p+"-decline-customers", "sim: customers "+p+" declines permanently (comma-separated)")
			fs.Var(&f.declineSKUs, p+"-decline-skus", "sim: SKUs "+p+" declines permanently (comma-separated)")
		}
		fs.Float64Var(&f.inProgressRate, p+"-in-progress-rate", 0, "sim: share of new "+p+" keys held in progress, answered 409 idempotency_key_in_use meanwhile (0..1)")
		fs.DurationVar(&f.inProgressHold, p+"-in-progress-hold", providers.DefaultInProgressHold, "sim: how long "+p+" holds a key in progress before applying its effect")
		fs.Float64Var(&f.strayRate, p+"-stray-rate", 0, "sim: share of "+p+" calls answered 401 or 404 without effect (0..1)")
		fs.Var(&f.broken, p+"-broken", "sim: contract breaches for proving the audit, comma-separated: ignore-keys, apply-declines, drop-compensations")
	}
	fs.Var(&s.riskReviewCustomers, "risk-review-customers", "sim: customers whose orders the risk agent sends to review (comma-separated)")
	fs.Var(&s.riskRejectCustomers, "risk-reject-customers", "sim: customers whose orders the risk agent rejects (comma-separated)")
	fs.Int64Var(&s.riskReviewAbove, "risk-review-above", 0, "sim: amount_cents above which the risk agent sends orders to review; 0 is off")
	fs.Int64Var(&s.riskRejectAbove, "risk-reject-above", 0, "sim: amount_cents above which the risk agent rejects orders (reject wins over review); 0 is off")
	fs.Var(&s.outOfStockWarehouses, "inventory-out-of-stock-warehouses", "sim: warehouses that answer every reservation out_of_stock (comma-separated)")
	fs.DurationVar(&s.shippingDuration, "shipping-duration", defaultSimShippingDuration,
		"sim: how long a shipment asked for with Prefer: respond-async takes, answered 202 and progressing meanwhile; 0 ships at once")
	fs.IntVar(&s.initialStock, "sim-initial-stock", 0, "sim: stock of every SKU at each warehouse before its first reservation; 0 is unlimited")
	fs.Uint64Var(&s.seed, "sim-seed", 0, "sim: seed of the fault dice; 0 is random")
	fs.BoolVar(&s.callLog, "sim-call-log", false, "sim: record when every call arrived and was over, in Redis, for checking limits from the providers' side (the audit's flow rules)")
}

func (s *simFlags) config() (providers.SimConfig, error) {
	mk := func(p string) providers.Faults {
		f := s.faults[p]
		return providers.Faults{
			FailureRate: f.failureRate, Latency: f.latency, TimeoutRate: f.timeoutRate,
			RateLimitRate: f.rateLimitRate, RetryAfter: f.retryAfter,
			DeclineCustomers: f.declineCustomers, DeclineSKUs: f.declineSKUs,
			InProgressRate: f.inProgressRate, InProgressHold: f.inProgressHold,
			StrayRate: f.strayRate, Broken: f.broken,
		}
	}
	c := providers.SimConfig{
		Inventory: mk(providers.ProviderInventory), Payment: mk(providers.ProviderPayment), Shipping: mk(providers.ProviderShipping),
		Risk: mk(providers.ProviderRisk), InitialStock: s.initialStock, Seed: s.seed, CallLog: s.callLog,
	}
	c.Inventory.OutOfStockWarehouses = s.outOfStockWarehouses
	c.Shipping.ShipmentDuration = s.shippingDuration
	c.Risk.ReviewCustomers, c.Risk.RejectCustomers = s.riskReviewCustomers, s.riskRejectCustomers
	c.Risk.ReviewAboveCents, c.Risk.RejectAboveCents = s.riskReviewAbove, s.riskRejectAbove
	if err := c.Validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

// redisFlags are the Redis settings of every command that opens Redis:
// one of --redis-url, --redis-cluster and --redis-sentinel, with the
// credentials and TLS settings that apply to each.
type redisFlags struct {
	url, cluster, sentinel         string
	username, password             string
	sentinelUser, sentinelPassword string
	tls                            bool
	caFile, certFile, keyFile      string
	// shards is --index-shards, for the commands that read or write the
	// indexes (registerShards); -1 when not registered.
	shards int
}

func (r *redisFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "redis-url", "", "redis://[user:pass@]host:port/db (or rediss:// for TLS) of a single Redis")
	fs.StringVar(&r.cluster, "redis-cluster", "", "comma-separated seed addresses (host:port,...) of a Redis Cluster, instead of --redis-url")
	fs.StringVar(&r.sentinel, "redis-sentinel", "", "<master-name>@host:port,host:port of Redis Sentinels, instead of --redis-url")
	fs.StringVar(&r.username, "redis-username", "", "Redis ACL user (for --redis-url it replaces the URL's)")
	fs.StringVar(&r.password, "redis-password", "", "Redis password (for --redis-url it replaces the URL's; prefer the environment variable)")
	fs.StringVar(&r.sentinelUser, "redis-sentinel-username", "", "ACL user of the Sentinels themselves")
	fs.StringVar(&r.sentinelPassword, "redis-sentinel-password", "", "password of the Sentinels themselves")
	fs.BoolVar(&r.tls, "redis-tls", false, "use TLS with --redis-cluster or --redis-sentinel (a URL asks for it with rediss://)")
	fs.StringVar(&r.caFile, "redis-ca-file", "", "PEM file of the CAs to trust for a TLS Redis, in place of the system's")
	fs.StringVar(&r.certFile, "redis-cert-file", "", "PEM client certificate for a TLS Redis that requires one (with --redis-key-file)")
	fs.StringVar(&r.keyFile, "redis-key-file", "", "PEM key of --redis-cert-file")
	r.shards = -1
}

// registerShards adds --index-shards, for the commands that use the
// order indexes.
func (r *redisFlags) registerShards(fs *flag.FlagSet) {
	fs.IntVar(&r.shards, "index-shards", 0, fmt.Sprintf("shards of the global indexes (0: what this Redis already uses, else %d on a cluster and 1 on a single node); every process of a deployment uses the same",
		statemachine.DefaultClusterShards))
}

// redisFlagNames maps server.RedisConfig's fields to their flags.
var redisFlagNames = map[string]string{
	"URL": "--redis-url", "Cluster": "--redis-cluster", "Sentinel": "--redis-sentinel",
	"CAFile": "--redis-ca-file", "CertFile": "--redis-cert-file", "KeyFile": "--redis-key-file",
}

// given reports whether a Redis was named.
func (r *redisFlags) given() bool { return r.url != "" || r.cluster != "" || r.sentinel != "" }

// config returns the Redis config of the flags, with a pool of poolSize
// (0: go-redis's default).
func (r *redisFlags) config(poolSize int) server.RedisConfig {
	return server.RedisConfig{
		URL: r.url, Cluster: r.cluster, Sentinel: r.sentinel,
		Username: r.username, Password: r.password, SentinelUsername: r.sentinelUser, SentinelPassword: r.sentinelPassword,
		TLS: r.tls, PoolSize: poolSize, CAFile: r.caFile, CertFile: r.certFile, KeyFile: r.keyFile,
	}
}

// errNoRedis is the usage error of a command run without a Redis.
var errNoRedis = usageError{fmt.Errorf("one of --redis-url, --redis-cluster or --redis-sentinel is required (or %s, %s, %s)",
	EnvName("redis-url"), EnvName("redis-cluster"), EnvName("redis-sentinel"))}

// open opens Redis with a pool of poolSize (0: go-redis's default) and
// checks that it accepts the credentials and the TLS settings. Bad settings
// are usage errors naming their flag; refused credentials fail the command.
func (r *redisFlags) open(ctx context.Context, poolSize int) (*server.RedisConn, error) {
	if !r.given() {
		return nil, errNoRedis
	}
	conn, err := r.config(poolSize).Open()
	var ce *server.RedisConfigError
	switch {
	case errors.As(err, &ce):
		if errors.Is(err, server.ErrRedisTopologies) {
			return nil, usageError{errors.New("--redis-url, --redis-cluster and --redis-sentinel exclude each other")}
		}
		return nil, usageError{fmt.Errorf("%s: %w", redisFlagNames[ce.Field], ce.Err)}
	case err != nil:
		return nil, usageError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := conn.Check(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// resolveShards returns the number of index shards for conn: what the
// Redis already uses, or --index-shards, or the default (see
// statemachine.ResolveShards). A mismatch is a usage error. A Redis that
// does not answer within 10s leaves the flag's value or the default, with
// a warning: processes start without Redis and wait for it.
func (r *redisFlags) resolveShards(ctx context.Context, conn *server.RedisConn, log *slog.Logger) (int, error) {
	want := max(r.shards, 0)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		n, err := statemachine.ResolveShards(ctx, conn.Client, want)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, statemachine.ErrShardsMismatch):
			return 0, usageError{fmt.Errorf("--index-shards: %w", err)}
		}
		select {
		case <-ctx.Done():
			n = cmp.Or(want, statemachine.DefaultShards(conn.Client))
			log.Warn("cannot read the index shards this Redis uses; going on with the configured or default number", "shards", n, "err", err)
			return n, nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// apiFlags are the settings of the API (api, dev).
type apiFlags struct {
	listen                          string
	monitorReadOnly, insecureListen bool
	tokensFile, tokens              string
	rateLimit, rateBurst            int
	maxBacklog                      int
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.listen, "listen", "127.0.0.1:8080", "API address; without API tokens only a loopback address, unless --insecure-listen")
	fs.BoolVar(&a.monitorReadOnly, "monitor-readonly", true, "make asynqmon read-only")
	fs.StringVar(&a.tokensFile, "api-tokens-file", "", `file of API tokens, one "name secret scope1,scope2" a line; scopes: orders:write, orders:read, admin`)
	fs.StringVar(&a.tokens, "api-tokens", "", `API tokens as "name secret scopes" entries separated by ";" (prefer the file or the environment variable)`)
	fs.BoolVar(&a.insecureListen, "insecure-listen", false, "allow serving without API tokens on an address other than loopback")
	fs.IntVar(&a.rateLimit, "rate-limit", 100, "requests per second each API token may send on average; 0 disables")
	fs.IntVar(&a.rateBurst, "rate-burst", 200, "requests an API token may send at once")
	fs.IntVar(&a.maxBacklog, "max-backlog", 50000, "pending workflow tasks above which POST /v1/orders answers 503; 0 disables")
}

// config returns the API's config. Without tokens it refuses an address
// other than loopback unless --insecure-listen.
func (a *apiFlags) config() (server.APIConfig, error) {
	var errs []error
	if a.rateLimit < 0 {
		errs = append(errs, fmt.Errorf("--rate-limit must be 0 (off) or positive, got %d", a.rateLimit))
	}
	if a.rateBurst < 1 {
		errs = append(errs, fmt.Errorf("--rate-burst must be positive, got %d", a.rateBurst))
	}
	if a.maxBacklog < 0 {
		errs = append(errs, fmt.Errorf("--max-backlog must be 0 (off) or positive, got %d", a.maxBacklog))
	}
	tokens, err := a.readTokens()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return server.APIConfig{}, usageError{err}
	}
	c := server.APIConfig{Listen: a.listen, MonitorWritable: !a.monitorReadOnly, InsecureListen: a.insecureListen}
	c.API.Tokens = tokens
	c.API.RateLimit, c.API.RateBurst, c.API.MaxBacklog = offIfZero(a.rateLimit), a.rateBurst, offIfZero(a.maxBacklog)
	if err := c.Validate(); errors.Is(err, server.ErrInsecureListen) {
		return c, usageError{fmt.Errorf("--listen %s is not a loopback address and no API tokens are configured: "+
			"set --api-tokens-file (%s) or --api-tokens (%s), or pass --insecure-listen (%s) to serve without authentication",
			a.listen, EnvName("api-tokens-file"), EnvName("api-tokens"), EnvName("insecure-listen"))}
	} else if err != nil {
		return c, usageError{err}
	}
	return c, nil
}

// readTokens parses --api-tokens-file or --api-tokens; errors never show a
// secret.
func (a *apiFlags) readTokens() ([]api.Token, error) {
	text, source := a.tokens, "--api-tokens"
	switch {
	case a.tokensFile != "" && a.tokens != "":
		return nil, errors.New("--api-tokens-file and --api-tokens exclude each other")
	case a.tokensFile != "":
		b, err := os.ReadFile(a.tokensFile)
		if err != nil {
			return nil, fmt.Errorf("--api-tokens-file: %w", err)
		}
		text, source = string(b), "--api-tokens-file "+a.tokensFile
	case a.tokens == "":
		return nil, nil
	}
	tokens, err := api.ParseTokens(text)
	if err == nil && len(tokens) == 0 {
		err = errors.New("no token")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return tokens, nil
}

// offIfZero maps a flag's 0 (off) to the negative value that turns a
// setting off in the API's config, where 0 means the default.
func offIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
