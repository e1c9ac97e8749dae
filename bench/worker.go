package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// DoneChannel carries the ID of every order a benchmark worker finished.
// Its PUBLISH calls (SPUBLISH on a cluster) are the harness's own and are
// left out of the command counts.
const DoneChannel = "bench:done"

// The worker modes.
const (
	ModeOrderflow = "orderflow"
	ModeBaseline  = "baseline"
	// ModeOrderflowV2 is orderflow running version 2 of the order
	// workflow (risk agent, a fan-out reservation, a tracked shipment).
	// Its workers are ModeOrderflow's: they run every version.
	ModeOrderflowV2 = "orderflow-v2"
)

// WorkerOptions configure a benchmark worker process.
type WorkerOptions struct {
	Mode string
	// RedisURL is a single Redis; RedisCluster the seeds of a cluster.
	RedisURL, RedisCluster string
	Concurrency            int
	// TaskCheckInterval and Wake tune the orderflow worker (idle runs); a
	// zero TaskCheckInterval leaves the worker's default.
	TaskCheckInterval time.Duration
	Wake              bool
	// WakeWorkers is the engine's number of wake-path goroutines; zero
	// keeps its default.
	WakeWorkers int
	// ProviderLatency is added to every provider call.
	ProviderLatency time.Duration
	// WorkerID names the worker in its lease tokens (each token starts
	// with it and a dash). Empty: a random one.
	WorkerID string
	// Lease and ReaperInterval tune the engine; zero keeps its defaults
	// (5s and 1s).
	Lease, ReaperInterval time.Duration
	// Flow is the orderflow worker's flow control.
	Flow flowcontrol.Config
	// FlowArgs are the flow-control flags of the worker process the
	// harness starts (parsed into Flow there).
	FlowArgs []string
}

// RunWorker runs a benchmark worker until ctx ends: an orderflow worker, or
// the baseline's raw asynq chain, both calling in-process, zero-latency
// providers and announcing finished orders on DoneChannel. It calls ready
// once the worker runs.
func RunWorker(ctx context.Context, o WorkerOptions, log *slog.Logger, ready func()) error {
	conn, err := server.RedisConfig{URL: o.RedisURL, Cluster: o.RedisCluster, PoolSize: 2*o.Concurrency + 20}.Open()
	if err != nil {
		return err
	}
	defer conn.Close()
	pub := newDonePublisher(conn.Client)
	defer pub.close()
	inproc := providers.NewInProcess()
	// A provider forgets keys after a while; a soak's worker memory must
	// measure the worker, not a ledger of every key of the run.
	inproc.KeyRetention = 2 * time.Minute
	inproc.Latency = o.ProviderLatency
	prov := inproc.Set()
	switch o.Mode {
	case ModeOrderflow, ModeOrderflowV2:
		cfg := server.WorkerConfig{Concurrency: o.Concurrency, TaskCheckInterval: o.TaskCheckInterval, Logger: log, Flow: o.Flow}
		cfg.Engine.WorkerID, cfg.Engine.Lease, cfg.Engine.ReaperInterval = o.WorkerID, o.Lease, o.ReaperInterval
		cfg.Engine.OnFinish = func(in *statemachine.Instance) { pub.done(in.ID) }
		cfg.Engine.WakeWorkers = o.WakeWorkers
		if !o.Wake {
			cfg.Engine.WakeWorkers = -1
		}
		w, err := server.NewWorker(conn.Client, prov, cfg, nil)
		if err != nil {
			return err
		}
		if err := w.Start(); err != nil {
			return err
		}
		ready()
		<-ctx.Done()
		w.Shutdown()
	case ModeBaseline:
		srv := asynq.NewServerFromRedisClient(conn.Client, asynq.Config{
			Concurrency: o.Concurrency, Queues: map[string]int{statemachine.DefaultQueue: 1},
			TaskCheckInterval: o.TaskCheckInterval, DelayedTaskCheckInterval: 250 * time.Millisecond,
			LogLevel: asynq.WarnLevel,
		})
		chain := &baselineChain{client: asynq.NewClientFromRedisClient(conn.Client), prov: prov, pub: pub}
		if err := srv.Start(chain.mux()); err != nil {
			return err
		}
		ready()
		<-ctx.Done()
		srv.Shutdown()
	default:
		return fmt.Errorf("unknown worker mode %q", o.Mode)
	}
	return nil
}

// donePublisher batches the finished-order notifications into pipelines so
// that the harness's own signalling costs the worker little.
type donePublisher struct {
	rdb  redis.UniversalClient
	mu   sync.Mutex
	ids  []string
	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

func newDonePublisher(rdb redis.UniversalClient) *donePublisher {
	p := &donePublisher{rdb: rdb, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	p.wg.Go(p.run)
	return p
}

func (p *donePublisher) done(id string) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *donePublisher) run() {
	for {
		select {
		case <-p.stop:
			p.flush()
			return
		case <-p.kick:
			p.flush()
		}
	}
}

func (p *donePublisher) flush() {
	p.mu.Lock()
	ids := p.ids
	p.ids = nil
	p.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx := context.Background()
	_, cluster := p.rdb.(*redis.ClusterClient)
	_, _ = p.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, id := range ids {
			if cluster {
				// Sharded: PUBLISH would go to every node of the cluster.
				pl.SPublish(ctx, DoneChannel, id)
			} else {
				pl.Publish(ctx, DoneChannel, id)
			}
		}
		return nil
	})
}

func (p *donePublisher) close() {
	close(p.stop)
	p.wg.Wait()
}

// The baseline: the naive way to build the pipeline on asynq, where each
// handler does its step and enqueues the next task. It keeps no state, no
// history and no compensation.
const (
	typeChainReserve = "chain:reserve"
	typeChainCharge  = "chain:charge"
	typeChainShip    = "chain:ship"
)

// chainPayload is what every task of the baseline chain carries.
type chainPayload struct {
	ID            string           `json:"id"`
	CustomerID    string           `json:"customer_id"`
	Currency      string           `json:"currency"`
	AmountCents   int64            `json:"amount_cents"`
	Items         []providers.Item `json:"items"`
	ReservationID string           `json:"reservation_id,omitempty"`
	TransactionID string           `json:"transaction_id,omitempty"`
}

type baselineChain struct {
	client *asynq.Client
	prov   providers.Set
	pub    *donePublisher
}

func (c *baselineChain) mux() *asynq.ServeMux {
	m := asynq.NewServeMux()
	m.HandleFunc(typeChainReserve, c.reserve)
	m.HandleFunc(typeChainCharge, c.charge)
	m.HandleFunc(typeChainShip, c.ship)
	return m
}

func decodeChain(t *asynq.Task) (chainPayload, error) {
	var p chainPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return p, nil
}

func (c *baselineChain) next(ctx context.Context, typ string, p chainPayload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = c.client.EnqueueContext(ctx, asynq.NewTask(typ, b), asynq.Queue(statemachine.DefaultQueue), asynq.MaxRetry(25), asynq.Timeout(2*time.Minute))
	return err
}

func (c *baselineChain) reserve(ctx context.Context, t *asynq.Task) error {
	p, err := decodeChain(t)
	if err != nil {
		return err
	}
	if p.ReservationID, err = c.prov.Inventory.Reserve(ctx, providers.ReserveRequest{
		IdempotencyKey: providers.IdempotencyKey(p.ID, providers.OpReserve), OrderID: p.ID, Items: p.Items,
	}); err != nil {
		return err
	}
	return c.next(ctx, typeChainCharge, p)
}

func (c *baselineChain) charge(ctx context.Context, t *asynq.Task) error {
	p, err := decodeChain(t)
	if err != nil {
		return err
	}
	if p.TransactionID, err = c.prov.Payment.Charge(ctx, providers.ChargeRequest{
		IdempotencyKey: providers.IdempotencyKey(p.ID, providers.OpCharge), OrderID: p.ID,
		CustomerID: p.CustomerID, AmountCents: p.AmountCents, Currency: p.Currency,
	}); err != nil {
		return err
	}
	return c.next(ctx, typeChainShip, p)
}

func (c *baselineChain) ship(ctx context.Context, t *asynq.Task) error {
	p, err := decodeChain(t)
	if err != nil {
		return err
	}
	if _, err = c.prov.Shipping.Ship(ctx, providers.ShipRequest{
		IdempotencyKey: providers.IdempotencyKey(p.ID, providers.OpShip), OrderID: p.ID,
		ReservationID: p.ReservationID, Items: p.Items,
	}); err != nil {
		return err
	}
	c.pub.done(p.ID)
	return nil
}

// submitters start orders the way each mode's clients would.
type submitter interface {
	submit(ctx context.Context, id string) error
}

// orderflowSubmitter starts orders with the engine, as the API does
// (draft, task, accept), without the HTTP layer.
type orderflowSubmitter struct {
	eng   *engine.Engine
	input []byte
}

func (s *orderflowSubmitter) submit(ctx context.Context, id string) error {
	_, err := s.eng.Start(ctx, engine.StartRequest{ID: id, Workflow: statemachine.OrderWorkflow, Input: s.input, Fingerprint: "bench"})
	return err
}

// baselineSubmitter enqueues the chain's first task.
type baselineSubmitter struct {
	client  *asynq.Client
	payload chainPayload
}

func (s *baselineSubmitter) submit(ctx context.Context, id string) error {
	p := s.payload
	p.ID = id
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = s.client.EnqueueContext(ctx, asynq.NewTask(typeChainReserve, b), asynq.Queue(statemachine.DefaultQueue), asynq.MaxRetry(25), asynq.Timeout(2*time.Minute))
	return err
}
