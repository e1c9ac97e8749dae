// Package engine runs workflow instances by DESIGN.md's step protocol: one
// task advances an instance as far as it can, each transition is one
// compare-and-set in Redis, each step keeps its own attempts and backoff in
// the instance record, and an engine-level lease lets another worker resume
// an instance within seconds when its worker dies.
//
// # Advancing
//
// Advance claims the instance's lease, then loops: it acts on pending signals,
// runs the current state's step, and commits the outcome as one transition
// that also begins the next step's first attempt. It hands off through a new
// task only when the next step runs on another queue, when the instance must
// wait (a retry backoff, a signal), when its time slice runs out, or when the
// worker is stopping.
//
// # Recovery
//
// Every unfinished instance sits in the due index with the time at which it
// needs attention if nothing else happens. The reaper (RunReaper) looks at
// due instances and re-drives those whose lease ran out or whose task was
// lost.
package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/statemachine"
)

// Config configures an Engine. Every field's comment gives its default.
type Config struct {
	// Lease is how long a worker holds an instance without renewing it; a
	// dead worker's instance is resumed after it. Default 5s.
	Lease time.Duration
	// TimeSlice bounds how long one task advances one instance before it
	// hands off to a new task. Default 30s.
	TimeSlice time.Duration
	// PickupGrace is how long an accepted instance may wait for its first
	// task before the reaper checks on it. Default 60s.
	PickupGrace time.Duration
	// RetryGrace is how long after a retry's due time the reaper checks that
	// the retry ran. Default 30s.
	RetryGrace time.Duration
	// FirstTaskGrace is how long an instance's first task, when it finds no
	// instance, waits for the API to finish writing it before it gives up
	// (the API queues the task first). Default 10s.
	FirstTaskGrace time.Duration
	// ReaperInterval is how often RunReaper scans the due index. Default 1s.
	ReaperInterval time.Duration
	// TrimInterval is how often RunReaper drops expired instances from the
	// list index. Default 1m.
	TrimInterval time.Duration
	// WorkerID names this process in lease tokens and logs. Default random.
	WorkerID string
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Rand returns a float in [0,1) for backoff jitter. Default math/rand.
	Rand func() float64
	// OnFinish, when set, is called after an instance reached a terminal
	// state, on the goroutine that advanced it (benchmarks, domain events).
	OnFinish func(in *statemachine.Instance)
	// Concurrency is how many advances the worker runs at once; the wake
	// path takes work only while the worker runs fewer. Default 20.
	Concurrency int
	// Queues are the queues the worker serves, with their weights; the
	// wake path reads their wake lists. Default: the registry's queues,
	// weight 1.
	Queues map[string]int
	// WakeWorkers is how many goroutines take announced instances straight
	// from the wake lists while the worker has spare capacity, so a hop
	// costs milliseconds instead of asynq's polling interval. 0 means
	// Concurrency, so the wake path can fill every free slot; a negative
	// value turns it off.
	WakeWorkers int
	// WakeTimeout is how long one blocking read of the wake lists waits.
	// Default 1s.
	WakeTimeout time.Duration
	// Backlog, when set, returns how many tasks wait in a queue; a run goes
	// on inline into a step of another queue this worker serves only while
	// nothing waits there. Default: nothing is ever taken to wait.
	Backlog func(queue string) int64
	// Flow, when set, gates the attempts of the steps it governs (rate
	// limits, concurrency limits, circuit breakers). Default none.
	Flow FlowControl
	// ParkRecheck is how long a step parked by the flow control waits, at
	// most, before it asks again without a wake-up. Default 30s.
	ParkRecheck time.Duration
	// TracerProvider makes the spans of advances and step attempts (see
	// tracing.go). Default: OpenTelemetry's global provider, a no-op unless
	// tracing.Setup installed one.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	c.Lease = cmp.Or(c.Lease, 5*time.Second)
	c.TimeSlice = cmp.Or(c.TimeSlice, 30*time.Second)
	c.PickupGrace = cmp.Or(c.PickupGrace, 60*time.Second)
	c.RetryGrace = cmp.Or(c.RetryGrace, 30*time.Second)
	c.FirstTaskGrace = cmp.Or(c.FirstTaskGrace, 10*time.Second)
	c.ReaperInterval = cmp.Or(c.ReaperInterval, time.Second)
	c.TrimInterval = cmp.Or(c.TrimInterval, time.Minute)
	c.Concurrency = cmp.Or(c.Concurrency, 20)
	c.WakeWorkers = cmp.Or(c.WakeWorkers, c.Concurrency)
	c.WakeTimeout = cmp.Or(c.WakeTimeout, time.Second)
	c.ParkRecheck = cmp.Or(c.ParkRecheck, 30*time.Second)
	if c.WorkerID == "" {
		c.WorkerID = randomHex(4)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if c.Lease < 100*time.Millisecond {
		return fmt.Errorf("Lease must be at least 100ms, got %s", c.Lease)
	}
	if c.TimeSlice <= 0 || c.PickupGrace <= 0 || c.RetryGrace <= 0 || c.FirstTaskGrace <= 0 || c.ReaperInterval <= 0 {
		return errors.New("TimeSlice, PickupGrace, RetryGrace, FirstTaskGrace and ReaperInterval must be positive")
	}
	return nil
}

// Engine advances workflow instances.
type Engine struct {
	cfg        Config
	store      *statemachine.Store
	registry   *statemachine.Registry
	activities Activities
	queue      Queue
	metrics    *Metrics
	tracer     *tracer
	log        *slog.Logger

	tokens       atomic.Uint64
	stopping     atomic.Bool
	stopped      context.Context // done once Stop is called
	stop         context.CancelFunc
	inFlight     atomic.Int64  // task-driven advances running
	wakeInFlight atomic.Int64  // wake-path advances running
	capacity     chan struct{} // signalled when an advance ends
}

// New returns an engine. activities must hold every step of every
// registered definition, or be nil for an engine that only starts and
// signals instances (the API process) and never advances them. queue
// enqueues the engine's tasks. metrics may be nil.
func New(cfg Config, store *statemachine.Store, registry *statemachine.Registry, activities Activities, queue Queue, metrics *Metrics) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, d := range registry.All() {
		if activities == nil {
			break
		}
		for _, s := range d.States {
			if s.Step != "" && activities[s.Step] == nil {
				return nil, fmt.Errorf("%s: no activity registered for step %q", d.Key(), s.Step)
			}
		}
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = map[string]int{}
		for _, q := range registry.Queues() {
			cfg.Queues[q] = 1
		}
	}
	metrics.initialize(registry)
	stopped, stop := context.WithCancel(context.Background())
	return &Engine{
		cfg: cfg, store: store, registry: registry, activities: activities, queue: queue,
		metrics: metrics, tracer: newTracer(cfg.TracerProvider, registry),
		log: cfg.Logger.With("worker", cfg.WorkerID), capacity: make(chan struct{}, 1),
		stopped: stopped, stop: stop,
	}, nil
}

// Store returns the engine's store.
func (e *Engine) Store() *statemachine.Store { return e.store }

// Registry returns the engine's workflow registry.
func (e *Engine) Registry() *statemachine.Registry { return e.registry }

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Stop makes running advances hand off at their next step boundary instead
// of starting another step, so that a worker can shut down without holding
// leases. A long step (a state with a Heartbeat) does not run to its end:
// its activity is cancelled and the step handed off at once, to be taken
// over from its checkpoint, so that shutting down never waits for a
// shipment to be delivered. It does not wait.
func (e *Engine) Stop() {
	e.stopping.Store(true)
	e.stop()
}

// InFlight returns how many task-driven advances are running now.
func (e *Engine) InFlight() int64 { return e.inFlight.Load() }

func (e *Engine) newToken() string {
	return fmt.Sprintf("%s-%d", e.cfg.WorkerID, e.tokens.Add(1))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Hint is what the task that starts an instance already knows about it, so
// that the worker can take the lease with its first transition instead of a
// separate read. A stale hint costs one extra round trip, never correctness.
type Hint struct {
	Workflow string
	Version  int
	State    string
	Rev      int64
	Input    []byte
	// At is when the task was queued, just before the instance was written.
	At time.Time
	// Priority is the instance's priority.
	Priority statemachine.Priority
	// Fingerprint is the instance's input fingerprint: the hinted write
	// checks it, so a task queued for a request that was refused never
	// drives a later instance under the same ID with the refused input.
	Fingerprint string
}

// AdvanceOptions describe the task that asks for an advance.
type AdvanceOptions struct {
	// Queue is the queue the task came from. Steps of other queues are
	// handed off to their queue.
	Queue string
	// TaskID identifies the task in logs.
	TaskID string
	// Hint, when set, lets the first transition take the lease.
	Hint *Hint
}

// ErrNotReady means a first task ran before its instance was written (the
// API queues the task first); the task should be retried shortly.
var ErrNotReady = errors.New("instance not accepted yet")
