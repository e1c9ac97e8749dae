package server

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// WorkerConfig configures a worker process. Every field's comment gives its
// default.
type WorkerConfig struct {
	// Concurrency is how many tasks run at once. Default 20.
	Concurrency int
	// Queues maps queue names to weights. Default: every queue a registered
	// step uses, weight 1. Each is served at every priority, its weight
	// multiplied by the priority's (statemachine.WeightedQueues).
	Queues map[string]int
	// TaskCheckInterval is asynq's poll interval when the queues are empty.
	// Default 200ms: every hop without a delay is also announced on the wake
	// lists, which a worker with spare capacity blocks on, so the poll is
	// the durable fallback, not the latency path; each poll costs one
	// script per queue (12 with the priorities).
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often scheduled retries are moved to
	// their queue. Default 500ms: only waits of 2s or more (or flow-control
	// waits while tasks wait) go through delayed tasks, and asynq schedules
	// them in whole seconds; each check costs two scripts per queue.
	DelayedTaskCheckInterval time.Duration
	// ShutdownTimeout bounds how long a stopping worker waits for running
	// tasks. Default 10s.
	ShutdownTimeout time.Duration
	// Engine configures leases, the reaper and retries.
	Engine engine.Config
	// Store configures retention.
	Store statemachine.StoreConfig
	// Registry holds the workflow versions the worker runs. Default
	// statemachine.NewOrderRegistry().
	Registry *statemachine.Registry
	// Activities tunes the order steps (how often a followed shipment is
	// polled).
	Activities orders.Options
	// Flow configures flow control: rate limits per provider, concurrency
	// limits per key of the input, circuit breakers, the provider gate.
	// Default none: the engine gets no flow control at all and pays
	// nothing for it. Its Lease defaults to Engine.Lease, its WaiterTTL to
	// twice Engine.ParkRecheck, and its Settles to the order workflow's
	// (a refund settles a charge in doubt, a release a reservation).
	Flow flowcontrol.Config
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns the config with its zero fields set.
func (c WorkerConfig) WithDefaults() WorkerConfig {
	c.Concurrency = cmp.Or(c.Concurrency, 20)
	c.TaskCheckInterval = cmp.Or(c.TaskCheckInterval, 200*time.Millisecond)
	c.DelayedTaskCheckInterval = cmp.Or(c.DelayedTaskCheckInterval, 500*time.Millisecond)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Engine.Logger = cmp.Or(c.Engine.Logger, c.Logger)
	return c
}

// Worker is a worker process: an asynq server running the engine's tasks,
// and the reaper that resumes instances whose worker died.
type Worker struct {
	cfg     WorkerConfig
	rdb     redis.UniversalClient
	srv     *asynq.Server
	engine  *engine.Engine
	store   *statemachine.Store
	queue   *tasks.Queue
	backlog *tasks.Backlog
	flow    *flowcontrol.Flow

	stopBackground context.CancelFunc
	background     sync.WaitGroup
	once           sync.Once
}

// NewWorker builds a worker over a shared Redis client and the providers the
// order steps call. reg receives the engine's metrics (nil: none).
func NewWorker(rdb redis.UniversalClient, p providers.Set, cfg WorkerConfig, reg prometheus.Registerer) (*Worker, error) {
	cfg = cfg.WithDefaults()
	registry := cfg.Registry
	if registry == nil {
		registry = statemachine.NewOrderRegistry()
	}
	queues := cfg.Queues
	if len(queues) == 0 {
		queues = map[string]int{}
		for _, q := range registry.Queues() {
			queues[q] = 1
		}
	}
	queues = statemachine.WeightedQueues(queues)
	names := make([]string, 0, len(queues))
	for q := range queues {
		names = append(names, q)
	}
	backlog := tasks.NewBacklog(rdb, names, 250*time.Millisecond)
	registerBacklog(reg, backlog, names)
	store := statemachine.NewStore(rdb, cfg.Store)
	queue := tasks.NewQueue(rdb, tasks.QueueConfig{})
	cfg.Engine.Concurrency, cfg.Engine.Queues, cfg.Engine.Backlog = cfg.Concurrency, queues, backlog.Len
	var flow *flowcontrol.Flow
	if cfg.Flow.Enabled() {
		var err error
		if flow, err = flowcontrol.New(rdb, flowConfig(cfg), reg); err != nil {
			store.Close()
			return nil, err
		}
		cfg.Engine.Flow = flow
	}
	eng, err := engine.New(cfg.Engine, store, registry, orders.ActivitiesWith(p, cfg.Activities), queue, engine.NewMetrics(reg))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("building engine: %w", err)
	}
	if flow != nil {
		flow.Attach(eng)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queues,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           tasks.RetryDelay,
		Logger:                   asynqLogger{cfg.Logger.With("lib", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		HealthCheckFunc: func(err error) {
			if err != nil {
				cfg.Logger.Warn("redis health check failed", "err", err)
			}
		},
	})
	return &Worker{cfg: cfg, rdb: rdb, srv: srv, engine: eng, store: store, queue: queue, backlog: backlog, flow: flow}, nil
}

// OrderSettles are the order workflow's steps that settle another step in
// doubt by repeating its call: a refund repeats a charge whose answer was
// lost, a release a reservation.
var OrderSettles = map[string]flowcontrol.Settle{
	statemachine.StepRefund:  {Step: statemachine.StepCharge, Result: orders.ResultTransactionID},
	statemachine.StepRelease: {Step: statemachine.StepReserve, Result: orders.ResultReservationID},
}

// flowConfig returns the worker's flow-control config with the defaults
// that come from the engine's.
func flowConfig(cfg WorkerConfig) flowcontrol.Config {
	f := cfg.Flow
	e := cfg.Engine.WithDefaults()
	f.Lease = cmp.Or(f.Lease, e.Lease)
	f.WaiterTTL = cmp.Or(f.WaiterTTL, 2*e.ParkRecheck)
	if f.Settles == nil {
		f.Settles = OrderSettles
	}
	f.Logger = cmp.Or(f.Logger, cfg.Logger)
	return f
}

// Flow returns the worker's flow control, or nil when none is configured.
func (w *Worker) Flow() *flowcontrol.Flow { return w.flow }

// registerBacklog exports how many tasks wait in each queue the worker
// serves, as the gauge orderflow_queue_pending{queue}, which an autoscaler
// can follow (every worker reports the same lists: take the max by queue).
func registerBacklog(reg prometheus.Registerer, b *tasks.Backlog, queues []string) {
	if reg == nil {
		return
	}
	for _, q := range queues {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderflow_queue_pending", Help: "Tasks waiting in an asynq queue (its pending list), refreshed every 250ms while it is read.",
			ConstLabels: prometheus.Labels{"queue": q},
		}, func() float64 { return float64(b.Len(q)) }))
	}
}

// Ping checks that Redis answers (readiness).
func (w *Worker) Ping(ctx context.Context) error { return w.store.Ping(ctx) }

// Engine returns the worker's engine.
func (w *Worker) Engine() *engine.Engine { return w.engine }

// Start starts processing tasks and the reaper. It does not block.
func (w *Worker) Start() error {
	CheckDurability(context.Background(), w.rdb, w.cfg.Store.Durability, w.cfg.Logger)
	h := &tasks.Handler{Engine: w.engine}
	if err := w.srv.Start(tasks.NewServeMux(h)); err != nil {
		return fmt.Errorf("starting asynq server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.stopBackground = cancel
	w.background.Go(func() { w.engine.RunReaper(ctx) })
	w.background.Go(func() { w.backlog.Run(ctx) })
	if w.flow != nil {
		if err := w.flow.Publish(ctx); err != nil {
			w.cfg.Logger.Warn("publishing the flow-control limits for GET /v1/providers", "err", err)
		}
		w.background.Go(func() { w.flow.Run(ctx) })
	}
	if wake := cloneClient(w.rdb, w.engine.Config().WakeWorkers+1); wake != nil {
		w.stopBackground = func() {
			cancel()
			_ = wake.Close() // interrupts the blocking reads of the wake list
		}
		w.background.Go(func() { w.engine.RunWake(ctx, wake) })
	} else {
		w.cfg.Logger.Warn("this Redis client type cannot be copied; the wake fast path is off")
	}
	w.cfg.Logger.Info("worker started", "concurrency", w.cfg.Concurrency, "worker", w.engine.Config().WorkerID)
	return nil
}

// Shutdown stops the worker gracefully: running advances hand off at their
// next step boundary, asynq stops taking tasks and waits up to
// ShutdownTimeout for running ones (it puts back any still running), and
// batched index writes are flushed. No step is lost.
func (w *Worker) Shutdown() {
	w.once.Do(func() {
		w.engine.Stop()
		w.srv.Stop()
		w.srv.Shutdown()
		if w.stopBackground != nil {
			w.stopBackground()
			w.background.Wait()
		}
		w.store.Close()
		w.cfg.Logger.Info("worker stopped")
	})
}
