package engine_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// An exploratory stress run (ADVERSARY_STRESS=1): several engines over one
// Redis, short leases whose renewals fail at random, slow steps, duplicate
// deliveries, random provider answers (consistent per key), cancels and
// operator retries, with the reapers running; then every order is checked
// against its provider ledger.

// flakyRenew fails a share of lease renewals sent through a client.
var renewFailures atomic.Int64

type flakyRenew struct {
	sha  string
	rate float64
	mu   sync.Mutex
	rnd  *rand.Rand
}

func (h *flakyRenew) fail() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.rnd.Float64() < h.rate
	if f {
		renewFailures.Add(1)
	}
	return f
}

func (h *flakyRenew) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *flakyRenew) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *flakyRenew) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if a := c.Args(); len(a) > 1 && fmt.Sprint(a[0]) == "evalsha" && fmt.Sprint(a[1]) == h.sha && h.fail() {
				err := fmt.Errorf("i/o timeout")
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// stressQueue delivers tasks to a pool of workers, sometimes twice.
type stressQueue struct {
	ch   chan engine.Task
	dup  float64
	rnd  func() float64
	stop atomic.Bool
}

func (q *stressQueue) Enqueue(_ context.Context, t engine.Task) error {
	if q.stop.Load() {
		return nil
	}
	deliver := func() {
		if q.stop.Load() {
			return
		}
		select {
		case q.ch <- t:
		default:
			go func() { q.ch <- t }()
		}
	}
	n := 1
	if q.rnd() < q.dup {
		n = 2
	}
	for range n {
		if t.Delay > 0 {
			time.AfterFunc(min(t.Delay, 50*time.Millisecond), deliver)
		} else {
			deliver()
		}
	}
	return nil
}

func (q *stressQueue) Waiting(context.Context, string, string) (bool, error) { return false, nil }

// consistentProvider decides each call's answer at random, consistently per
// key: once applied, a key never declines; once declined, it always does.
type consistentProvider struct {
	mu       sync.Mutex
	provs    map[string]*providers.InProcess
	keyLocks map[string]*sync.Mutex
	declined map[string]bool
	rnd      *rand.Rand
	rndMu    sync.Mutex
	cancel   func(id string)
	stall    time.Duration
}

func (p *consistentProvider) float() float64 {
	p.rndMu.Lock()
	defer p.rndMu.Unlock()
	return p.rnd.Float64()
}

func (p *consistentProvider) of(id string) *providers.InProcess {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provs[id] == nil {
		p.provs[id] = providers.NewInProcess()
	}
	return p.provs[id]
}

func (p *consistentProvider) lock(key string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keyLocks[key] == nil {
		p.keyLocks[key] = &sync.Mutex{}
	}
	return p.keyLocks[key]
}

func (p *consistentProvider) activities() engine.Activities {
	out := engine.Activities{}
	for _, step := range []string{statemachine.StepReserve, statemachine.StepCharge, statemachine.StepShip, statemachine.StepRefund, statemachine.StepRelease} {
		provider, decline, code := providers.ProviderPayment, 0, ""
		switch step {
		case statemachine.StepReserve:
			provider, decline, code = providers.ProviderInventory, http.StatusConflict, providers.CodeOutOfStock
		case statemachine.StepCharge:
			decline, code = http.StatusPaymentRequired, providers.CodeCardDeclined
		case statemachine.StepShip:
			provider, decline, code = providers.ProviderShipping, http.StatusUnprocessableEntity, providers.CodeUndeliverable
		case statemachine.StepRelease:
			provider = providers.ProviderInventory
		}
		fail := func(status int, code string) error {
			return &providers.Error{Provider: provider, Op: step, Status: status, Code: code}
		}
		out[step] = func(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
			prov := p.of(in.ID)
			act := orders.Activities(prov.Set())[step]
			if p.float() < 0.15 {
				// A slow request: the worker waits before the provider sees it.
				time.Sleep(time.Duration(p.float() * float64(p.stall)))
			}
			if p.float() < 0.05 && p.cancel != nil {
				p.cancel(in.ID)
			}
			mu := p.lock(in.KeyPrefix() + ":" + step)
			mu.Lock()
			defer mu.Unlock()
			key := in.KeyPrefix() + ":" + step
			p.mu.Lock()
			declined := p.declined[key]
			p.mu.Unlock()
			if declined {
				return nil, fail(decline, code)
			}
			x := p.float()
			switch {
			case x < 0.40:
				return act(ctx, in)
			case x < 0.45:
				res, err := act(ctx, in)
				mu.Unlock()
				time.Sleep(time.Duration(p.float() * float64(p.stall))) // a slow answer
				mu.Lock()
				return res, err
			case x < 0.55:
				return nil, fail(http.StatusServiceUnavailable, providers.CodeUnavailable)
			case x < 0.65:
				_, _ = act(ctx, in)
				return nil, fail(http.StatusInternalServerError, providers.CodeInternal)
			case x < 0.70:
				return nil, fail(http.StatusTooManyRequests, providers.CodeRateLimited)
			case x < 0.75:
				_, _ = act(ctx, in)
				return nil, fail(http.StatusConflict, providers.CodeInProgress)
			case x < 0.80:
				return nil, fail(http.StatusUnauthorized, providers.CodeUnauthorized)
			case x < 0.85 && decline != 0 && prov.Applied(step) == 0:
				p.mu.Lock()
				p.declined[key] = true
				p.mu.Unlock()
				return nil, fail(decline, code)
			}
			return act(ctx, in)
		}
	}
	return out
}

func renewSHA(t *testing.T) string {
	src, err := os.ReadFile("../statemachine/scripts/renew.lua")
	require.NoError(t, err)
	sum := sha1.Sum(src)
	return hex.EncodeToString(sum[:])
}

func TestAdversaryStress(t *testing.T) {
	if os.Getenv("ADVERSARY_STRESS") == "" {
		t.Skip("exploratory; set ADVERSARY_STRESS=1")
	}
	seed, _ := strconv.ParseUint(os.Getenv("ADVERSARY_SEED"), 10, 64)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d", seed)
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		const lease = 150 * time.Millisecond
		def := statemachine.OrderV1()
		for i := range def.States {
			s := &def.States[i]
			s.Retry.InitialInterval, s.Retry.MaxInterval = time.Millisecond, 5*time.Millisecond
			if s.Compensation || s.Irreversible {
				s.Retry.MaxAttempts = 6
			}
		}
		reg := statemachine.NewRegistry().MustRegister(def)
		rnd := rand.New(rand.NewPCG(seed, 1))
		var rndMu sync.Mutex
		float := func() float64 { rndMu.Lock(); defer rndMu.Unlock(); return rnd.Float64() }

		q := &stressQueue{ch: make(chan engine.Task, 10000), dup: 0.15, rnd: float}
		prov := &consistentProvider{provs: map[string]*providers.InProcess{}, keyLocks: map[string]*sync.Mutex{},
			declined: map[string]bool{}, rnd: rand.New(rand.NewPCG(seed, 2)), stall: 3 * lease}
		var engines []*engine.Engine
		var cancelled sync.Map
		for i := range 3 {
			c := r.Client(t)
			c.AddHook(&flakyRenew{sha: renewSHA(t), rate: 0.5, rnd: rand.New(rand.NewPCG(seed, uint64(10+i)))})
			store := statemachine.NewStore(c, statemachine.StoreConfig{})
			t.Cleanup(store.Close)
			eng, err := engine.New(engine.Config{Logger: discardLogger(), Lease: lease, PickupGrace: 400 * time.Millisecond,
				RetryGrace: 200 * time.Millisecond, WorkerID: fmt.Sprintf("w%d", i)}, store, reg, prov.activities(), q, nil)
			require.NoError(t, err)
			engines = append(engines, eng)
		}
		signal := func(id string) {
			cancelled.Store(id, true)
			_, _, _ = engines[0].Signal(context.Background(), id, statemachine.SignalCancel, "")
		}
		prov.cancel = signal

		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case task := <-q.ch:
						eng := engines[(w+int(float()*3))%3]
						_ = eng.Advance(context.Background(), task.InstanceID, engine.AdvanceOptions{Queue: task.Queue, TaskID: task.TaskID, Hint: task.Hint})
					}
				}
			})
		}
		for i := range engines {
			wg.Go(func() {
				for ctx.Err() == nil {
					_, _ = engines[i].Reap(ctx)
					time.Sleep(20 * time.Millisecond)
				}
			})
		}

		n, _ := strconv.Atoi(os.Getenv("ADVERSARY_N"))
		if n == 0 {
			n = 40
		}
		ids := make([]string, n)
		for i := range n {
			ids[i] = fmt.Sprintf("s%d", i)
			_, err := engines[i%3].Start(ctx, engine.StartRequest{ID: ids[i], Workflow: statemachine.OrderWorkflow,
				Input: inputFor(t, "c"+strconv.Itoa(i), 1, 100), Fingerprint: "fp"})
			require.NoError(t, err)
			if float() < 0.2 {
				go func() {
					time.Sleep(time.Duration(float() * float64(50*time.Millisecond)))
					signal(ids[i])
				}()
			}
		}
		// An operator retries dead letters.
		wg.Go(func() {
			for ctx.Err() == nil {
				for _, id := range ids {
					in, err := engines[0].Store().Load(context.Background(), id)
					if err == nil && in.DeadLetter != "" {
						_, _ = engines[0].RetryDeadLetter(context.Background(), id, "stress operator")
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})

		deadline := time.Now().Add(60 * time.Second)
		var open []string
		for time.Now().Before(deadline) {
			open = open[:0]
			for _, id := range ids {
				in, err := engines[0].Store().Load(context.Background(), id)
				require.NoError(t, err)
				if !in.Status.Terminal() {
					open = append(open, id+"@"+in.State)
				}
			}
			if len(open) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		q.stop.Store(true)
		stop()
		wg.Wait()
		time.Sleep(5 * lease) // stragglers finish
		t.Logf("renew failures so far %d", renewFailures.Load())
		require.Empty(t, open, "orders not finished")

		for _, id := range ids {
			in, err := engines[0].Store().Load(context.Background(), id)
			require.NoError(t, err)
			p := prov.of(id)
			got := map[string]int{}
			for _, op := range []string{providers.OpReserve, providers.OpCharge, providers.OpShip, providers.OpRefund, providers.OpRelease} {
				got[op] = p.Applied(op)
			}
			switch in.Status {
			case statemachine.StatusCompleted:
				require.Equal(t, map[string]int{"reserve": 1, "charge": 1, "ship": 1, "refund": 0, "release": 0}, got, "%s completed", id)
			default:
				require.Equal(t, got[providers.OpCharge], got[providers.OpRefund], "%s %s: %v", id, in.State, got)
				require.Equal(t, got[providers.OpReserve], got[providers.OpRelease], "%s %s: %v", id, in.State, got)
				require.Zero(t, got[providers.OpShip], "%s %s: %v", id, in.State, got)
			}
			if in.Status == statemachine.StatusCancelled {
				_, ok := cancelled.Load(id)
				require.True(t, ok)
			}
		}
	})
}
