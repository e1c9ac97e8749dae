package flowcontrol

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/statemachine"
)

// Engine is what flow control needs of the engine: to wake a parked
// instance, and to read instances when it decides whom to wake.
// *engine.Engine is one.
type Engine interface {
	Wake(ctx context.Context, id string) error
	Store() *statemachine.Store
	Registry() *statemachine.Registry
}

// Flow is the engine.FlowControl of a worker: it gates the attempts of
// steps on the limits that every worker shares through Redis.
type Flow struct {
	cfg     Config
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	metrics *Metrics
	log     *slog.Logger
	byStep  map[string][]Limit
	id      string
	eng     atomic.Pointer[Engine]
}

var _ engine.FlowControl = (*Flow)(nil)

// New returns the flow control of cfg over rdb. It validates cfg; its
// metrics are registered with reg (nil: none). Attach the engine before
// the worker starts.
func New(rdb redis.UniversalClient, cfg Config, reg prometheus.Registerer) (*Flow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("flow control: %w", err)
	}
	cfg = cfg.WithDefaults()
	f := &Flow{
		cfg: cfg, rdb: rdb, limiter: newLimiter(rdb), metrics: NewMetrics(reg), log: cfg.Logger.With("component", "flowcontrol"),
		byStep: map[string][]Limit{}, id: randomID(),
	}
	for _, l := range cfg.Limits {
		f.byStep[l.Step] = append(f.byStep[l.Step], l)
	}
	return f, nil
}

// Attach gives flow control the engine it wakes parked instances through.
func (f *Flow) Attach(e Engine) { f.eng.Store(&e) }

func (f *Flow) engine() Engine {
	if e := f.eng.Load(); e != nil {
		return *e
	}
	panic("flowcontrol: no engine attached")
}

// Config returns the configuration, with defaults applied.
func (f *Flow) Config() Config { return f.cfg }

// Governs reports whether st's attempts go through flow control: the
// steps that call a gated provider (see gates), and the steps with a
// concurrency limit, their own or one of a step they settle. Nothing else
// pays for flow control.
func (f *Flow) Governs(st *statemachine.State) bool {
	if f.gates(f.provider(st)) {
		return true
	}
	if len(f.byStep[st.Step]) > 0 {
		return true
	}
	s, ok := f.cfg.Settles[st.Step]
	return ok && len(f.byStep[s.Step]) > 0
}

// gates reports whether the calls to provider go through its gate: with
// Config.Gate, a breaker, or a rate limit on it (whose 429s hold it).
func (f *Flow) gates(provider string) bool {
	if provider == "" {
		return false
	}
	_, limited := f.cfg.Rates[provider]
	return f.cfg.Gate || f.cfg.Breaker.On() || limited
}

// provider returns the provider st's step calls, when flow control knows
// it.
func (f *Flow) provider(st *statemachine.State) string {
	for _, p := range f.cfg.Providers {
		if p == st.Resource {
			return p
		}
	}
	return ""
}

// Admit decides whether an attempt of st's step by in may begin now. In
// turn: the provider's rate limit (wait for the next token), its gate
// (paused, held by a 429, circuit open, a probe out, and the recovery
// ramp's rate), and the step's concurrency slots (first come, first
// served: park until one comes free). An attempt that waits uses no
// attempt and holds nothing; one that goes is marked in flight and holds
// its slots until Done.
//
// The rate limit comes first so that an attempt held back by it costs one
// round trip a wait. A token taken by an attempt that then waits for
// another reason goes unused: the provider gets fewer calls, never more.
func (f *Flow) Admit(ctx context.Context, in *statemachine.Instance, st *statemachine.State) (engine.Admission, error) {
	a := &attempt{f: f, instance: in.ID, step: st.Step, provider: f.provider(st), id: randomID()}
	settling := f.settling(in, st)
	tokens := 1
	if settling != nil {
		tokens = 2 // the settling call, then the step's own
	}
	if f.gates(a.provider) {
		wait, err := f.allow(ctx, a.provider, in.ID, tokens)
		if err != nil {
			return engine.Admission{}, err
		}
		if wait > 0 {
			f.metrics.admission(a.provider, a.step, "rate")
			return engine.Admission{Wait: jitter(wait), Reason: a.provider + " rate limit"}, nil
		}
		policy := in.PolicyOf(st.Step, st.Retry)
		spare := 2*in.Attempts[st.Step] < policy.MaxAttempts
		g, err := f.gate(ctx, a.provider, a.id, spare)
		if err != nil {
			return engine.Admission{}, err
		}
		f.metrics.transition(a.provider, g.transition)
		if g.verdict != verdictOK {
			return f.held(a, g), nil
		}
		a.gated, a.probe = true, g.probe
		switch {
		case g.probe:
			f.metrics.state(a.provider, StateHalfOpen)
		case g.ramp < 0:
			f.metrics.state(a.provider, StateClosed)
		default:
			wait, err := f.allowRamp(ctx, a.provider, in.ID, g.ramp, tokens)
			if err != nil || wait > 0 {
				a.undo(ctx)
				if err != nil {
					return engine.Admission{}, err
				}
				f.metrics.admission(a.provider, a.step, "rate")
				return engine.Admission{Wait: jitter(wait), Reason: a.provider + " recovery ramp"}, nil
			}
		}
	}
	for _, s := range f.slotsFor(in, st, settling) {
		r, err := f.acquire(ctx, s, in.ID, a.id)
		if err != nil {
			a.undo(ctx)
			return engine.Admission{}, err
		}
		if len(r.heads) > 0 {
			f.serveLine(ctx, s, r.heads)
		}
		if !r.granted {
			a.undo(ctx)
			f.index(ctx, s)
			f.metrics.admission(a.provider, a.step, "parked")
			return engine.Admission{Park: true, Reason: fmt.Sprintf("%s: place %d in line", s.limit, r.position+1)}, nil
		}
		a.slots = append(a.slots, s)
	}
	f.metrics.admission(a.provider, a.step, "admitted")
	a.keepAlive()
	return engine.Admission{Done: a.done, Reason: "admitted"}, nil
}

// held turns the gate's refusal into how the attempt waits.
func (f *Flow) held(a *attempt, g gateResult) engine.Admission {
	f.metrics.admission(a.provider, a.step, g.verdict)
	wait := g.wait
	switch g.verdict {
	case verdictPaused:
		f.metrics.state(a.provider, StatePaused)
		wait = f.cfg.PauseRecheck
	case verdictOpen:
		f.metrics.state(a.provider, StateOpen)
	case verdictProbing:
		f.metrics.state(a.provider, StateHalfOpen)
		wait = min(wait, f.cfg.ProbeWait)
	}
	return engine.Admission{Wait: jitter(max(wait, time.Millisecond)), Reason: a.provider + " " + g.verdict}
}

// jitter spreads the attempts that wait for one moment: d plus up to a
// quarter of it (at most 250ms) more.
func jitter(d time.Duration) time.Duration {
	j := min(d/4, 250*time.Millisecond)
	if j <= 0 {
		return d
	}
	return d + rand.N(j)
}

// attempt is one admitted attempt, or one being admitted.
type attempt struct {
	f                  *Flow
	instance, step, id string
	provider           string
	gated, probe       bool
	slots              []slot
	mu                 sync.Mutex
	timer              *time.Timer
	finished           bool
}

// undo gives back what an attempt that will not begin took.
func (a *attempt) undo(ctx context.Context) {
	a.undoGate(ctx)
	for _, s := range a.slots {
		a.releaseSlot(ctx, s)
	}
	a.slots = nil
}

// undoGate takes the attempt's in-flight mark off, and frees the probe if
// it was one.
func (a *attempt) undoGate(ctx context.Context) {
	if !a.gated {
		return
	}
	a.gated = false
	if _, err := a.f.record(context.WithoutCancel(ctx), a.provider, a.id, outcomeNone, 0, a.probe); err != nil {
		a.f.log.Warn("taking an in-flight mark off; it lapses", "provider", a.provider, "err", err)
	}
}

func (a *attempt) releaseSlot(ctx context.Context, s slot) {
	ctx = context.WithoutCancel(ctx)
	l, err := a.f.release(ctx, s, a.instance, a.id)
	if err != nil {
		a.f.log.Warn("releasing a slot; it comes free when its lease runs out", "line", s.keys.tag, "err", err)
		return
	}
	if len(l.heads) > 0 {
		heads := make([]string, len(l.heads))
		for i, h := range l.heads {
			heads[i] = h.id
		}
		a.f.serveLine(ctx, s, heads)
	}
}

// keepAlive renews the attempt's slots and in-flight mark every third of
// the lease while the step runs; only a slow step pays for it.
func (a *attempt) keepAlive() {
	if !a.gated && len(a.slots) == 0 {
		return
	}
	every := a.f.cfg.Lease / 3
	a.mu.Lock()
	defer a.mu.Unlock()
	a.timer = time.AfterFunc(every, func() {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		defer cancel()
		closed := a.renew(ctx)
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.finished && !closed {
			a.timer.Reset(every)
		}
	})
}

// renew renews the attempt's marks once; it reports true when the Redis
// client is closed (the worker is gone), and renewing ends.
func (a *attempt) renew(ctx context.Context) (closed bool) {
	if a.gated {
		until := time.Now().Add(a.f.cfg.Lease).UnixMilli()
		if err := a.f.rdb.ZAddXX(ctx, keysOfProvider(a.provider).inflight, redis.Z{Score: float64(until), Member: a.id}).Err(); err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return true
			}
			a.f.log.Debug("renewing an in-flight mark", "provider", a.provider, "err", err)
		}
	}
	for _, s := range a.slots {
		ok, err := a.f.renewSlot(ctx, s, a.instance, a.id)
		switch {
		case errors.Is(err, redis.ErrClosed):
			return true
		case err != nil:
			a.f.log.Warn("renewing a slot", "line", s.keys.tag, "err", err)
		case !ok:
			a.f.log.Warn("a running attempt lost its slot (its lease ran out)", "line", s.keys.tag, "order_id", a.instance)
		}
	}
	return false
}

// done is the attempt's Admission.Done: it reports the outcome to the
// provider's gate and gives the slots back, waking who waits for them.
func (a *attempt) done(ctx context.Context, err error) {
	a.mu.Lock()
	a.finished = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	if a.gated {
		outcome, hold := classify(err)
		tr, rerr := a.f.record(ctx, a.provider, a.id, outcome, hold, a.probe)
		if rerr != nil {
			a.f.log.Warn("recording an outcome; the in-flight mark lapses", "provider", a.provider, "err", rerr)
		}
		if tr != "" {
			a.f.log.Info("circuit breaker moved", "provider", a.provider, "transition", tr)
			a.f.metrics.transition(a.provider, tr)
		}
	}
	for _, s := range a.slots {
		a.releaseSlot(ctx, s)
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
