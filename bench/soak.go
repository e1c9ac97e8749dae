package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/orderflow/orderflow/internal/subproc"
	"github.com/orderflow/orderflow/statemachine"
)

// SoakConfig configures a soak run (`orderflow bench --soak`). Every
// field's comment gives its default.
type SoakConfig struct {
	// RedisURL is the Redis to use; it is flushed. Empty: the harness
	// starts its own redis-server on a free port.
	RedisURL string
	// Rate is the arrival rate, orders per second. Default 300.
	Rate float64
	// Duration is how long orders arrive. Default 15m.
	Duration time.Duration
	// Workers is the number of worker processes. Default 2.
	Workers int
	// Concurrency of each worker process. Default 20.
	Concurrency int
	// ProviderLatency is how long each provider call takes. Default 5ms.
	ProviderLatency time.Duration
	// Lease and ReaperInterval are the workers' engine settings, which
	// bound how soon a killed worker's orders resume. Defaults 5s and 1s
	// (the engine's).
	Lease, ReaperInterval time.Duration
	// WakeWorkers sets the engine's wake-path goroutines. Default 0: the
	// engine's default.
	WakeWorkers int
	// Interval is the length of a row of the report. Default 1m.
	Interval time.Duration
	// SampleEvery is how often the due index, the workers' RSS and Redis's
	// memory are read. Default 1s.
	SampleEvery time.Duration
	// KillAt is when the first worker is SIGKILLed (and replaced).
	// Default half of Duration.
	KillAt time.Duration
	// Drain bounds the wait for the last orders once the load stopped.
	// Default 30s plus Lease.
	Drain time.Duration
	// Exe is the orderflow binary to run as workers. Default the running
	// executable.
	Exe string
	// Command is the command line, for the report.
	Command string
	// Log receives progress. Default stderr.
	Log io.Writer
	// ProfileDir, when set, makes every worker write a CPU profile there
	// (a killed worker's is lost), and the driver its own.
	ProfileDir string
}

// WithDefaults returns the config with its zero fields set.
func (c SoakConfig) WithDefaults() SoakConfig {
	c.Rate = cmp.Or(c.Rate, 300)
	c.Duration = cmp.Or(c.Duration, 15*time.Minute)
	c.Workers = cmp.Or(c.Workers, 2)
	c.Concurrency = cmp.Or(c.Concurrency, 20)
	c.ProviderLatency = cmp.Or(c.ProviderLatency, 5*time.Millisecond)
	c.Lease = cmp.Or(c.Lease, 5*time.Second)
	c.ReaperInterval = cmp.Or(c.ReaperInterval, time.Second)
	c.Interval = cmp.Or(c.Interval, time.Minute)
	c.SampleEvery = cmp.Or(c.SampleEvery, time.Second)
	c.KillAt = cmp.Or(c.KillAt, c.Duration/2)
	c.Drain = cmp.Or(c.Drain, 30*time.Second+c.Lease)
	if c.Exe == "" {
		c.Exe, _ = os.Executable()
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	return c
}

// SoakResult is what a soak run measured.
type SoakResult struct {
	Config  SoakConfig
	Machine string
	Date    time.Time
	// Orders is how many orders were scheduled; Errors failed to start.
	Orders, Errors int
	// Latency is the whole run; Rows split it by Interval, with what was
	// sampled in each.
	Latency LatencyRow
	Rows    []SoakRow
	Phases  []Phase
	// Slots names the worker processes, one column each; a killed worker's
	// replacement takes its column.
	Slots []string
	// Survivors are the columns whose worker ran the whole soak.
	Survivors []int
	// BytesPerOrder is Redis's used_memory growth over the whole run
	// divided by the orders finished.
	BytesPerOrder float64
	Kill          KillResult
	// CPU is how the machine's CPU was spent over the whole run.
	CPU CPUShare
}

// SoakRow is one interval of a soak.
type SoakRow struct {
	LatencyRow
	// DueEntries and DueLag are the largest due-index size and lag (how
	// long its oldest entry had been due) sampled in the interval.
	DueEntries int64
	DueLag     time.Duration
	// RSS is each worker column's resident set at the interval's last
	// sample in which its process ran, in bytes.
	RSS []int64
	// BytesPerOrder is Redis's used_memory growth from the start to the
	// interval's last sample, divided by the orders finished by then.
	BytesPerOrder float64
	// CPU is how the machine's CPU was spent in the interval.
	CPU CPUShare
}

// soakWorker is the worker process in one column.
type soakWorker struct {
	proc *subproc.Proc
	id   string
}

// soak is one soak run.
type soak struct {
	cfg   SoakConfig
	h     *harness
	store *statemachine.Store
	loop  *openLoop
	opts  WorkerOptions

	mu      sync.Mutex
	slots   []soakWorker
	started int // workers started, for their IDs
	samples []soakSample
	kill    KillResult
}

// RunSoak sends orders at a steady rate for the configured duration,
// samples the system every second, kills a worker half way, and returns
// the figures minute by minute.
func RunSoak(ctx context.Context, cfg SoakConfig) (*SoakResult, error) {
	cfg = cfg.WithDefaults()
	h, shutdown, err := newHarness(Config{RedisURL: cfg.RedisURL, Exe: cfg.Exe, Log: cfg.Log, ProfileDir: cfg.ProfileDir,
		Concurrency: cfg.Concurrency}.WithDefaults())
	if err != nil {
		return nil, err
	}
	defer shutdown()
	s := &soak{cfg: cfg, h: h, opts: WorkerOptions{Mode: ModeOrderflow, Concurrency: cfg.Concurrency,
		Wake: true, ProviderLatency: cfg.ProviderLatency,
		Lease: cfg.Lease, ReaperInterval: cfg.ReaperInterval, WakeWorkers: cfg.WakeWorkers}}
	res := &SoakResult{Config: cfg, Machine: describeMachine(ctx, h.rdb), Date: time.Now().UTC()}
	if err := h.flush(ctx); err != nil {
		return nil, err
	}
	for range cfg.Workers {
		w, err := s.startWorker()
		if err != nil {
			s.stopWorkers()
			return nil, err
		}
		s.slots = append(s.slots, w)
		res.Slots = append(res.Slots, w.id)
	}
	defer s.stopWorkers()
	sub, closeSub, err := h.submitter(ModeOrderflow, 64)
	if err != nil {
		return nil, err
	}
	defer closeSub()
	s.store = statemachine.NewStore(h.rdb, statemachine.StoreConfig{})
	defer s.store.Close()
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	mem0, err := usedMemory(ctx, h.rdb)
	if err != nil {
		return nil, err
	}

	n := max(1, int(cfg.Rate*cfg.Duration.Seconds()))
	s.loop = newOpenLoop(cfg.Rate, n, "soak")
	h.logf("soak: %d orders at %.0f/s for %s, %d workers (providers %s, lease %s, reaper every %s); worker %s is killed at %s",
		n, cfg.Rate, cfg.Duration, cfg.Workers, cfg.ProviderLatency, cfg.Lease, cfg.ReaperInterval, s.slots[0].id, cfg.KillAt)
	samplingDone := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() { s.sample(ctx, samplingDone) })
	bg.Go(func() { s.killAndReplace(ctx, samplingDone) })
	stopProfile := h.profileSelf("soak")
	err = s.loop.run(ctx, h.rdb, sub, cfg.Drain)
	stopProfile()
	close(samplingDone)
	bg.Wait()
	if err != nil {
		return nil, err
	}
	run, err := h.finishSteady(ctx, s.loop, s.store)
	if err != nil {
		return nil, err
	}
	res.Orders, res.Errors, res.Phases = n, run.errors, run.phases
	res.Latency = latencyOf(run.timings)
	res.Rows = s.rows(run.timings, mem0)
	if mem, err := usedMemory(ctx, h.rdb); err == nil && s.loop.finishedCount() > 0 {
		res.BytesPerOrder = float64(mem-mem0) / float64(s.loop.finishedCount())
	}
	s.mu.Lock()
	if len(s.samples) > 1 {
		res.CPU = shareBetween(s.samples[0].cpu, s.samples[len(s.samples)-1].cpu)
	}
	res.Kill = s.kill
	for i, w := range s.slots {
		if w.id == res.Slots[i] {
			res.Survivors = append(res.Survivors, i)
		} else {
			res.Slots[i] += " → " + w.id
		}
	}
	s.mu.Unlock()
	res.Kill.resume(ctx, s.store)
	return res, nil
}

// startWorker starts a worker with the next ID.
func (s *soak) startWorker() (soakWorker, error) {
	s.mu.Lock()
	s.started++
	o := s.opts
	o.WorkerID = fmt.Sprintf("soak-w%d", s.started)
	s.mu.Unlock()
	p, err := s.h.startWorker(o)
	if err != nil {
		return soakWorker{}, err
	}
	return soakWorker{proc: p, id: o.WorkerID}, nil
}

func (s *soak) stopWorkers() {
	s.mu.Lock()
	var ps []*subproc.Proc
	for _, w := range s.slots {
		ps = append(ps, w.proc)
	}
	s.mu.Unlock()
	stopAll(ps)
}

// pids returns the process IDs of the worker columns.
func (s *soak) pids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(s.slots))
	for i, w := range s.slots {
		out[i] = w.proc.Pid()
	}
	return out
}
