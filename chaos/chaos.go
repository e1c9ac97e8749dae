// Package chaos is orderflow's chaos harness (`orderflow chaos`, `make
// chaos`). It runs the real processes — redis-server with AOF and
// appendfsync always, the simulators with faults, the API and several
// workers — sends orders (with duplicate POSTs and cancels mid-flight),
// SIGKILLs workers at random and restarts Redis once, waits until every
// accepted order is finished, and audits the result against the provider
// ledgers, and the workers' flow-control limits (a payment rate limit, one
// charge per customer at a time) against the providers' call logs. It reports lost orders, double effects, and how long orders took
// to resume after their worker was killed.
package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redisserver"
	"github.com/orderflow/orderflow/internal/subproc"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// Config configures a chaos run. Every field's comment gives its default.
type Config struct {
	// Exe is the orderflow binary. Default the running executable.
	Exe string
	// Orders is how many distinct orders are sent. Default 2000.
	Orders int
	// Workers is the number of worker processes. Default 3.
	Workers int
	// KillsPerWorker is how often each worker is SIGKILLed. Default 5.
	KillsPerWorker int
	// RedisRestarts is how often Redis is killed and restarted. Default 2.
	RedisRestarts int
	// Duration is how long the load and the kills are spread over.
	// Default 40s.
	Duration time.Duration
	// FaultRate is the share of provider calls that misbehave, split
	// between 5xx, timeouts after the effect was applied, 429s, keys held
	// in progress (409 idempotency_key_in_use while the provider still
	// works on the first attempt) and stray 401/404 answers; a further
	// share of customers is declined. Default 0.2.
	FaultRate float64
	// Lease is the workers' lease. Default 2s.
	Lease time.Duration
	// Settle bounds the wait for every order to finish. Default 5m.
	Settle time.Duration
	// Rates are the rate limits the workers run with (--<provider>-rps,
	// --<provider>-burst). Default payment 80 calls a second, burst 10:
	// above the load's average, reached at its peaks (after a Redis
	// restart, a kill).
	Rates map[string]flowcontrol.Rate
	// Limits are the concurrency limits the workers run with (--limit).
	// Default charge:customer_id=1.
	Limits []flowcontrol.Limit
	// NoFlow runs the workers without flow control, Rates and Limits
	// ignored. Default false.
	NoFlow bool
	// Log receives progress. Default stderr.
	Log io.Writer
	// Cluster runs the system on a 3-master Redis Cluster instead of one
	// redis-server; a Redis restart then kills and restarts one master.
	// Default false.
	Cluster bool
	// Reshards is how many times a slot is migrated between masters with
	// redis-cli --cluster reshard in the middle of the run (Cluster only):
	// the lowest slot of the first master, which holds the first shard of
	// the indexes and a tenth of the orders' records. Default 0.
	Reshards int
}

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	if c.Exe == "" {
		c.Exe, _ = os.Executable()
	}
	c.Orders = cmp.Or(c.Orders, 2000)
	c.Workers = cmp.Or(c.Workers, 3)
	c.KillsPerWorker = cmp.Or(c.KillsPerWorker, 5)
	c.RedisRestarts = cmp.Or(c.RedisRestarts, 2)
	c.Duration = cmp.Or(c.Duration, 40*time.Second)
	c.FaultRate = cmp.Or(c.FaultRate, 0.2)
	c.Lease = cmp.Or(c.Lease, 2*time.Second)
	c.Settle = cmp.Or(c.Settle, 5*time.Minute)
	if c.NoFlow {
		c.Rates, c.Limits = nil, nil
	} else {
		if c.Rates == nil {
			c.Rates = map[string]flowcontrol.Rate{flowcontrol.ProviderPayment: {PerSecond: 80, Burst: 10}}
		}
		if c.Limits == nil {
			c.Limits = []flowcontrol.Limit{{Step: statemachine.StepCharge, Field: "customer_id", Max: 1}}
		}
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// Result is what a chaos run measured.
type Result struct {
	Submitted int // POST requests sent, duplicates included
	Distinct  int // distinct orders sent
	KeyOnly   int // orders sent with an Idempotency-Key and no order_id
	V2        int // orders started under workflow v2
	// Approved, Rejected and TimedOut count v2 reviews decided each way;
	// Paused the orders paused and resumed.
	Approved, Rejected, TimedOut, Paused int
	Accepted                             int // distinct orders answered 202
	Refused                              int // distinct orders never accepted (5xx to the end)
	Duplicates                           int // duplicate POSTs sent
	Cancels                              int // cancels sent
	Completed                            int
	Failed                               int
	Cancelled                            int
	// Lost counts accepted orders that do not exist or never finished;
	// LostOrders says where each is.
	Lost       int
	LostOrders []string
	// DoubleEffects counts idempotency keys applied more than once.
	DoubleEffects int
	// LeftEffects counts failed or cancelled orders left with an effect
	// not undone (a charge not refunded, stock not released, a shipment).
	LeftEffects int
	// DuplicateOrders counts second orders made under one Idempotency-Key:
	// seen by the client (a retry answered with another order) or by the
	// audit.
	DuplicateOrders int
	Kills           int
	RedisRestarts   int
	// Reshards are the slots migrated during the run.
	Reshards []int
	// Orphaned is how many orders were held by a worker when it was killed;
	// OrphanedInSlot how many of them held a concurrency slot, and
	// QueuedBehind how many more were parked behind those slots.
	Orphaned, OrphanedInSlot, QueuedBehind int
	// ResumeP50/P99 are the times from a kill to the next transition of the
	// orders the killed worker held; SlotResume the same for those of them
	// that held a concurrency slot, and QueuedResume for the orders parked
	// behind those slots (which wait for the held order's step as well).
	ResumeP50, ResumeP99             time.Duration
	SlotResumeP50, SlotResumeP99     time.Duration
	QueuedResumeP50, QueuedResumeP99 time.Duration
	Wall                             time.Duration
	Audit                            *audit.Report
}

// OK reports whether the run kept every promise.
func (r *Result) OK() bool {
	return r.Lost == 0 && r.DoubleEffects == 0 && r.LeftEffects == 0 && r.DuplicateOrders == 0 && r.Audit != nil && r.Audit.OK()
}

// String renders the figures.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "orders sent:        %d distinct (%d by Idempotency-Key alone; %d POSTs, %d duplicates), %d cancels\n", r.Distinct, r.KeyOnly, r.Submitted, r.Duplicates, r.Cancels)
	fmt.Fprintf(&b, "workflow v2:        %d orders; reviews %d approved, %d rejected, %d timed out; %d paused and resumed\n",
		r.V2, r.Approved, r.Rejected, r.TimedOut, r.Paused)
	fmt.Fprintf(&b, "accepted:           %d (refused while Redis was down and never retried in time: %d)\n", r.Accepted, r.Refused)
	fmt.Fprintf(&b, "finished:           %d completed, %d failed, %d cancelled\n", r.Completed, r.Failed, r.Cancelled)
	fmt.Fprintf(&b, "lost:               %d\n", r.Lost)
	for _, l := range r.LostOrders {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "double effects:     %d\n", r.DoubleEffects)
	fmt.Fprintf(&b, "effects left:       %d (on failed or cancelled orders)\n", r.LeftEffects)
	fmt.Fprintf(&b, "duplicate orders:   %d\n", r.DuplicateOrders)
	fmt.Fprintf(&b, "worker kills:       %d (orders held at the kill: %d, %d of them in a concurrency slot; %d queued behind those), Redis restarts: %d\n",
		r.Kills, r.Orphaned, r.OrphanedInSlot, r.QueuedBehind, r.RedisRestarts)
	if len(r.Reshards) > 0 {
		fmt.Fprintf(&b, "slots migrated:     %v (redis-cli --cluster reshard, mid-run)\n", r.Reshards)
	}
	fmt.Fprintf(&b, "resume after kill:  p50 %s, p99 %s (orders the killed worker held)\n", r.ResumeP50.Round(time.Millisecond), r.ResumeP99.Round(time.Millisecond))
	if r.OrphanedInSlot > 0 || r.QueuedBehind > 0 {
		fmt.Fprintf(&b, "  in a slot:        p50 %s, p99 %s (those of them that held a concurrency slot)\n",
			r.SlotResumeP50.Round(time.Millisecond), r.SlotResumeP99.Round(time.Millisecond))
		fmt.Fprintf(&b, "  queued behind:    p50 %s, p99 %s (orders parked behind those slots)\n",
			r.QueuedResumeP50.Round(time.Millisecond), r.QueuedResumeP99.Round(time.Millisecond))
	}
	if r.Audit != nil && r.Audit.Flow != nil {
		f := r.Audit.Flow
		for _, p := range slices.Sorted(maps.Keys(f.MaxPerSecond)) {
			fmt.Fprintf(&b, "provider's view:    %s got %d calls, at most %d in one second\n", p, f.Calls[p], f.MaxPerSecond[p])
		}
		for _, k := range slices.Sorted(maps.Keys(f.MaxInFlight)) {
			fmt.Fprintf(&b, "provider's view:    at most %d %s calls of one customer in flight\n", f.MaxInFlight[k], k)
		}
	}
	if r.Audit != nil {
		fmt.Fprintf(&b, "audit:              %d orders, effects %v, %d violations\n", r.Audit.Total(), r.Audit.Effects, len(r.Audit.Violations))
		for i, v := range r.Audit.Violations {
			if i == 20 {
				fmt.Fprintf(&b, "  ... %d more\n", len(r.Audit.Violations)-20)
				break
			}
			fmt.Fprintf(&b, "  %s %s%s: %s\n", v.Rule, v.OrderID, v.Key, v.Detail)
		}
	}
	fmt.Fprintf(&b, "wall time:          %s\n", r.Wall.Round(time.Millisecond))
	return b.String()
}

// system is the running processes of one chaos run.
type system struct {
	cfg    Config
	redis  *redisUnderTest
	conn   *server.RedisConn
	sim    *subproc.Proc
	simURL string
	api    *subproc.Proc
	apiURL string
	// apiV2 serves the same orders, but new ones take workflow v2.
	apiV2    *subproc.Proc
	apiV2URL string
	mu       sync.Mutex
	workers  []*worker
	workerID int
}

// worker is one worker process and the ID it leases orders under.
type worker struct {
	proc *subproc.Proc
	id   string
}

// Run runs the chaos scenario and returns its figures. It fails only when the
// scenario could not be run; broken promises are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	start := time.Now()
	dir, err := os.MkdirTemp("", "orderflow-chaos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s := &system{cfg: cfg}
	if cfg.Reshards > 0 && !cfg.Cluster {
		return nil, errors.New("chaos: Reshards needs Cluster")
	}
	if s.redis, err = startRedis(dir, cfg.Cluster); err != nil {
		return nil, err
	}
	defer s.redis.stop()
	if s.conn, err = s.redis.config(64).Open(); err != nil {
		return nil, err
	}
	defer s.conn.Close()
	if err := s.startSim(); err != nil {
		return nil, err
	}
	defer s.sim.Stop()
	if err := s.startAPI(ctx); err != nil {
		return nil, err
	}
	defer s.api.Stop()
	defer s.apiV2.Stop()
	for range cfg.Workers {
		w, err := s.startWorker()
		if err != nil {
			return nil, err
		}
		s.workers = append(s.workers, w)
	}
	defer s.stopWorkers()

	topology := "one redis-server"
	if cfg.Cluster {
		topology = fmt.Sprintf("a 3-master Redis Cluster, %d slot migration(s)", cfg.Reshards)
	}
	s.logf("chaos: %d orders over %s, %d workers (%d kills each), %d Redis restart(s), %.0f%% provider faults, flow control %v, on %s",
		cfg.Orders, cfg.Duration, cfg.Workers, cfg.KillsPerWorker, cfg.RedisRestarts, cfg.FaultRate*100, flowArgs(cfg), topology)
	res := &Result{}
	ld := newLoad(s, cfg)
	killer := newKiller(s, cfg)
	var wg sync.WaitGroup
	wg.Go(func() { ld.run(ctx) })
	wg.Go(func() { killer.run(ctx) })
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Every worker must be alive for the orders to finish.
	if err := s.ensureWorkers(); err != nil {
		return nil, err
	}
	s.logf("chaos: load done (%d accepted); waiting for every order to finish", len(ld.accepted()))
	if err := waitFinished(ctx, s, ld.accepted(), cfg.Settle); err != nil {
		s.logf("chaos: %v", err)
	}
	ld.fill(res)
	killer.fill(res)
	if err := s.measure(ctx, res, ld.accepted(), killer.orphans()); err != nil {
		return nil, err
	}
	res.Wall = time.Since(start)
	return res, nil
}

func (s *system) logf(format string, args ...any) { fmt.Fprintf(s.cfg.Log, format+"\n", args...) }

func (s *system) startSim() error {
	port, err := redisserver.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	share := s.cfg.FaultRate / 6 // 5xx, lost answers, 429s, in-progress keys, stray answers, and declined customers
	args := append([]string{"sim"}, s.redis.args()...)
	args = append(args, "--sim-listen", addr, "--log-level", "warn", "--sim-call-log",
		"--sim-seed", "42", "--payment-decline-customers", strings.Join(declinedCustomers, ","),
		"--shipping-decline-customers", strings.Join(undeliverableCustomers, ","),
		"--risk-review-customers", strings.Join(reviewCustomers, ","), "--risk-reject-customers", strings.Join(rejectCustomers, ","),
		"--inventory-out-of-stock-warehouses", chaosWarehouses[0], "--shipping-duration", "300ms")
	for _, p := range []string{"inventory", "payment", "shipping", "risk"} {
		args = append(args,
			"--"+p+"-failure-rate", fmt.Sprint(share),
			"--"+p+"-timeout-rate", fmt.Sprint(share),
			"--"+p+"-rate-limit-rate", fmt.Sprint(share),
			"--"+p+"-retry-after", "1s",
			// Held longer than the workers' 1s provider timeout.
			"--"+p+"-in-progress-rate", fmt.Sprint(share),
			"--"+p+"-in-progress-hold", "1500ms",
			"--"+p+"-stray-rate", fmt.Sprint(share))
	}
	if s.sim, err = subproc.Start(s.cfg.Exe, args, ""); err != nil {
		return err
	}
	s.simURL = "http://" + addr
	return waitHTTP(s.simURL+"/healthz", 30*time.Second)
}

func (s *system) startAPI(ctx context.Context) error {
	var err error
	if s.api, s.apiURL, err = s.startAPIVersion(1); err != nil {
		return err
	}
	s.apiV2, s.apiV2URL, err = s.startAPIVersion(2)
	return err
}

// startAPIVersion starts an API process whose new orders take version.
func (s *system) startAPIVersion(version int) (*subproc.Proc, string, error) {
	port, err := redisserver.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"api"}, s.redis.args()...)
	p, err := subproc.Start(s.cfg.Exe, append(args, "--listen", addr, "--log-level", "warn",
		"--workflow-version", strconv.Itoa(version)), "")
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	return p, url, waitHTTP(url+"/readyz", 30*time.Second)
}

// startWorker starts one worker process and learns the ID it leases under
// from its start-up log line.
func (s *system) startWorker() (*worker, error) {
	args := append([]string{"worker"}, s.redis.args()...)
	args = append(args,
		"--payment-url", s.simURL+"/payment", "--inventory-url", s.simURL+"/inventory", "--shipping-url", s.simURL+"/shipping",
		"--risk-url", s.simURL+"/risk", "--warehouses", strings.Join(chaosWarehouses, ","), "--review-timeout", reviewTimeout.String(),
		"--lease", s.cfg.Lease.String(), "--reaper-interval", "200ms", "--task-check-interval", "50ms",
		"--provider-timeout", "1s", "--log-format", "json", "--log-level", "info")
	args = append(args, flowArgs(s.cfg)...)
	p, err := subproc.Start(s.cfg.Exe, args, "")
	if err != nil {
		return nil, err
	}
	w := &worker{proc: p}
	deadline := time.Now().Add(30 * time.Second)
	for w.id == "" {
		w.id = workerIDFrom(p.Output())
		if w.id != "" {
			break
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("worker exited at start: %s", p.Output())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, errors.New("worker did not start within 30s")
		}
	}
	return w, nil
}

// flowArgs are the workers' flow-control flags.
func flowArgs(cfg Config) []string {
	var args []string
	for _, p := range slices.Sorted(maps.Keys(cfg.Rates)) {
		r := cfg.Rates[p]
		args = append(args, "--"+p+"-rps", strconv.Itoa(r.PerSecond), "--"+p+"-burst", strconv.Itoa(max(r.Burst, 1)))
	}
	for _, l := range cfg.Limits {
		args = append(args, "--limit", l.String())
	}
	return args
}

// flowLimits are the limits the audit checks from the providers' side:
// the rate limits, and the concurrency limits per customer on the steps
// whose calls carry the customer.
func flowLimits(cfg Config) *audit.FlowLimits {
	if cfg.NoFlow {
		return nil
	}
	l := &audit.FlowLimits{Rates: map[string]audit.RateLimit{}}
	for p, r := range cfg.Rates {
		l.Rates[p] = audit.RateLimit{PerSecond: r.PerSecond, Burst: max(r.Burst, 1)}
	}
	calls := map[string][2]string{
		statemachine.StepCharge: {providers.ProviderPayment, providers.OpCharge},
		statemachine.StepShip:   {providers.ProviderShipping, providers.OpShip},
	}
	for _, c := range cfg.Limits {
		if pc, ok := calls[c.Step]; ok && c.Field == "customer_id" {
			l.Concurrency = append(l.Concurrency, audit.ConcurrencyLimit{Provider: pc[0], Op: pc[1], Max: c.Max})
		}
	}
	return l
}

// workerIDFrom finds the worker ID in a worker's JSON start-up log line.
func workerIDFrom(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `"worker started"`) {
			continue
		}
		var m struct {
			Worker string `json:"worker"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Worker != "" {
			return m.Worker
		}
	}
	return ""
}

// ensureWorkers restarts workers that are not running.
func (s *system) ensureWorkers() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.workers {
		select {
		case <-w.proc.Done():
		default:
			continue
		}
		nw, err := s.startWorker()
		if err != nil {
			return err
		}
		s.workers[i] = nw
	}
	return nil
}

// replace SIGKILLs worker i and starts another in its place; afterKill, if
// set, runs in between. It returns the killed worker's ID and when it was
// killed.
func (s *system) replace(i int, afterKill func(id string, killed time.Time)) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.workers[i]
	old.proc.Kill()
	killed := time.Now()
	if afterKill != nil {
		afterKill(old.id, killed)
	}
	nw, err := s.startWorker()
	if err != nil {
		return old.id, killed, err
	}
	s.workers[i] = nw
	return old.id, killed, nil
}

func (s *system) stopWorkers() {
	s.mu.Lock()
	var ps []*subproc.Proc
	for _, w := range s.workers {
		ps = append(ps, w.proc)
	}
	s.mu.Unlock()
	subproc.StopAll(ps)
}
