package flowcontrol

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// fakeEngine records wake-ups; its store and registry are real.
type fakeEngine struct {
	store    *statemachine.Store
	registry *statemachine.Registry
	mu       sync.Mutex
	woken    []string
}

func (e *fakeEngine) Wake(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.woken = append(e.woken, id)
	return nil
}

func (e *fakeEngine) Store() *statemachine.Store       { return e.store }
func (e *fakeEngine) Registry() *statemachine.Registry { return e.registry }

// takeWoken returns and forgets the instances woken so far.
func (e *fakeEngine) takeWoken() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.woken
	e.woken = nil
	return w
}

type testBundle struct {
	rdb redis.UniversalClient
	eng *fakeEngine
	def *statemachine.Definition
}

func setup(t *testing.T, r *redistest.Instance) *testBundle {
	t.Helper()
	rdb := r.Client(t)
	store := statemachine.NewStore(rdb, statemachine.StoreConfig{})
	t.Cleanup(store.Close)
	reg := statemachine.NewOrderRegistry()
	def, err := reg.Default(statemachine.OrderWorkflow)
	require.NoError(t, err)
	return &testBundle{rdb: rdb, eng: &fakeEngine{store: store, registry: reg}, def: def}
}

// flow returns a flow control of cfg on the bundle's Redis: each call is
// another worker.
func (b *testBundle) flow(t *testing.T, cfg Config) *Flow {
	t.Helper()
	f, err := New(b.rdb, cfg, nil)
	require.NoError(t, err)
	f.Attach(b.eng)
	return f
}

// instance creates an order of customer in state (and status running),
// with attempts already made of the steps named.
func (b *testBundle) instance(t *testing.T, id, customer, state string, attempted ...string) *statemachine.Instance {
	t.Helper()
	ctx := context.Background()
	input, _ := json.Marshal(map[string]any{"customer_id": customer, "amount_cents": 100})
	_, err := b.eng.store.Create(ctx, statemachine.NewInstance{ID: id, Definition: b.def, Input: input, Task: "t", Due: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	var f statemachine.Fields
	for _, s := range attempted {
		f.Attempt(s, 1)
	}
	_, err = b.eng.store.Apply(ctx, statemachine.Change{ID: id, ExpectState: b.def.Initial, ExpectRev: 1, Lease: statemachine.LeaseIgnore,
		State: state, Status: statemachine.StatusRunning, Fields: f})
	require.NoError(t, err)
	in, err := b.eng.store.Load(ctx, id)
	require.NoError(t, err)
	return in
}

// end moves an instance to cancelled, as a cancel while it waited does.
func (b *testBundle) end(t *testing.T, in *statemachine.Instance) {
	t.Helper()
	_, err := b.eng.store.Apply(context.Background(), statemachine.Change{ID: in.ID, ExpectState: in.State, ExpectRev: in.Rev,
		Lease: statemachine.LeaseIgnore, State: statemachine.OrderCancelled, Status: statemachine.StatusCancelled})
	require.NoError(t, err)
}

func (b *testBundle) state(name string) *statemachine.State {
	st, ok := b.def.State(name)
	if !ok {
		panic(name)
	}
	return st
}

func admit(t *testing.T, f *Flow, in *statemachine.Instance, st *statemachine.State) engine.Admission {
	t.Helper()
	a, err := f.Admit(context.Background(), in, st)
	require.NoError(t, err)
	return a
}

func requireAdmitted(t *testing.T, a engine.Admission, why ...any) {
	t.Helper()
	require.False(t, a.Park, "parked: %s %v", a.Reason, why)
	require.Zero(t, a.Wait, "waits: %s %v", a.Reason, why)
	require.NotNil(t, a.Done)
}

var errUnavailable = &providers.Error{Provider: "payment", Op: "charge", Status: 503}

func TestParseLimit(t *testing.T) {
	t.Parallel()
	l, err := ParseLimit(" charge:customer_id=2 ")
	require.NoError(t, err)
	require.Equal(t, Limit{Step: "charge", Field: "customer_id", Max: 2}, l)
	require.Equal(t, "charge:customer_id=2", l.String())
	for _, bad := range []string{"", "charge", "charge=1", "charge:customer_id", "charge:customer_id=0", "charge:customer_id=x", "ch{a}rge:c=1", ":c=1"} {
		_, err := ParseLimit(bad)
		require.Error(t, err, bad)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.False(t, Config{}.Enabled())
	require.True(t, Config{Gate: true}.Enabled())
	require.NoError(t, Config{Rates: map[string]Rate{"payment": {PerSecond: 5}}}.Validate())
	err := Config{
		Rates:   map[string]Rate{"bank": {PerSecond: 5}, "payment": {PerSecond: 0}},
		Limits:  []Limit{{Step: "charge", Field: "customer_id", Max: 1}, {Step: "charge", Field: "customer_id", Max: 2}},
		Breaker: BreakerConfig{ErrorRate: 2},
	}.Validate()
	require.ErrorContains(t, err, `unknown provider "bank"`)
	require.ErrorContains(t, err, "Rates[payment].PerSecond")
	require.ErrorContains(t, err, "limited twice")
	require.ErrorContains(t, err, "Breaker.ErrorRate")
}

func TestGovernsOnlyWhatIsLimited(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.New(t, redistest.BackendMiniredis))
	f := b.flow(t, Config{Limits: []Limit{{Step: "charge", Field: "customer_id", Max: 1}}, Providers: []string{"payment"}})
	require.True(t, f.Governs(b.state(statemachine.OrderCharging)))
	require.False(t, f.Governs(b.state(statemachine.OrderRefunding)), "no gate, and refund settles nothing here")
	require.False(t, f.Governs(b.state(statemachine.OrderReserving)))
	require.False(t, f.Governs(b.state(statemachine.OrderPending)))
	f = b.flow(t, Config{Rates: map[string]Rate{"payment": {PerSecond: 5}}, Settles: map[string]Settle{"release": {Step: "reserve", Result: "reservation_id"}}})
	require.True(t, f.Governs(b.state(statemachine.OrderCharging)))
	require.True(t, f.Governs(b.state(statemachine.OrderRefunding)), "a rate limit gates its provider's steps")
	require.False(t, f.Governs(b.state(statemachine.OrderReserving)))
	f = b.flow(t, Config{Breaker: BreakerConfig{ErrorRate: 0.5}})
	require.True(t, f.Governs(b.state(statemachine.OrderReserving)), "a breaker gates every provider")
	require.True(t, f.Governs(b.state(statemachine.OrderShipping)))
}

func TestRateLimitMakesAttemptsWait(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		cfg := Config{Rates: map[string]Rate{"payment": {PerSecond: 1, Burst: 2}}}
		w1, w2 := b.flow(t, cfg), b.flow(t, cfg)
		charging := b.state(statemachine.OrderCharging)
		ins := make([]*statemachine.Instance, 4)
		for i := range ins {
			ins[i] = b.instance(t, fmt.Sprintf("o%d", i), "c", statemachine.OrderCharging)
		}
		var admitted int
		var waits []time.Duration
		for i, in := range ins {
			a := admit(t, []*Flow{w1, w2}[i%2], in, charging)
			require.False(t, a.Park)
			if a.Wait == 0 {
				admitted++
				a.Done(context.Background(), nil)
			} else {
				waits = append(waits, a.Wait)
			}
		}
		require.Equal(t, 2, admitted, "the burst, shared by both workers")
		require.Len(t, waits, 2)
		require.Greater(t, waits[0], 500*time.Millisecond, "the next token comes in about 1s")
		require.LessOrEqual(t, waits[0], 1500*time.Millisecond)
		require.Greater(t, waits[1], 1500*time.Millisecond, "the next waiter's place is one interval later")
		require.LessOrEqual(t, waits[1], 2500*time.Millisecond)
		// Other providers are not limited.
		a := admit(t, w1, b.instance(t, "r1", "c", statemachine.OrderReserving), b.state(statemachine.OrderReserving))
		requireAdmitted(t, a)
		a.Done(context.Background(), nil)
	})
}

func TestConcurrencyLimitServesFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		cfg := Config{Limits: []Limit{{Step: "charge", Field: "customer_id", Max: 1}}}
		f := b.flow(t, cfg)
		charging := b.state(statemachine.OrderCharging)
		x, y, z := b.instance(t, "x", "cust", statemachine.OrderCharging), b.instance(t, "y", "cust", statemachine.OrderCharging),
			b.instance(t, "z", "cust", statemachine.OrderCharging)
		other := b.instance(t, "o", "someone-else", statemachine.OrderCharging)
		ax := admit(t, f, x, charging)
		requireAdmitted(t, ax)
		ay := admit(t, f, y, charging)
		require.True(t, ay.Park, "y waits for x")
		require.Contains(t, ay.Reason, "place 1")
		az := admit(t, f, z, charging)
		require.True(t, az.Park)
		require.Contains(t, az.Reason, "place 2")
		ao := admit(t, f, other, charging)
		requireAdmitted(t, ao, "another customer has a line of its own")
		ao.Done(context.Background(), nil)

		ax.Done(context.Background(), errUnavailable)
		require.Equal(t, []string{"y"}, b.eng.takeWoken(), "the first in line is woken")
		require.True(t, admit(t, f, z, charging).Park, "z may not jump the line")
		ay = admit(t, f, y, charging)
		requireAdmitted(t, ay)
		ay.Done(context.Background(), nil)
		require.Equal(t, []string{"z"}, b.eng.takeWoken())
		az = admit(t, f, z, charging)
		requireAdmitted(t, az)
		az.Done(context.Background(), engine.ErrNotAttempted)
		require.Empty(t, b.eng.takeWoken())
		b.requireLineEmpty(t, "c:charge:customer_id:cust")
	})
}

// requireLineEmpty checks that a line has no live holder and no waiter.
func (b *testBundle) requireLineEmpty(t *testing.T, tag string) {
	t.Helper()
	ctx := context.Background()
	k := keysOfTag(tag)
	held, err := b.rdb.ZCount(ctx, k.holders, fmt.Sprint(time.Now().UnixMilli()), "+inf").Result()
	require.NoError(t, err)
	require.Zero(t, held, "slots held")
	waiting, err := b.rdb.ZCard(ctx, k.waiters).Result()
	require.NoError(t, err)
	require.Zero(t, waiting, "waiters")
}

func TestConcurrencySlotOfADeadWorkerComesFreeWithinALease(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		cfg := Config{Limits: []Limit{{Step: "charge", Field: "customer_id", Max: 1}}, Lease: 300 * time.Millisecond, JanitorInterval: 20 * time.Millisecond}
		live := b.flow(t, cfg)
		// The dead worker's client is closed once x is admitted: x's slot
		// is never renewed, nor released.
		deadRedis := r.Client(t)
		dead, err := New(deadRedis, cfg, nil)
		require.NoError(t, err)
		dead.Attach(b.eng)
		charging := b.state(statemachine.OrderCharging)
		x, y := b.instance(t, "x", "cust", statemachine.OrderCharging), b.instance(t, "y", "cust", statemachine.OrderCharging)
		// x's worker dies while x runs: its Done never comes.
		requireAdmitted(t, admit(t, dead, x, charging))
		require.NoError(t, deadRedis.Close())
		require.True(t, admit(t, live, y, charging).Park)
		killed := time.Now()
		// The janitor wakes y once x's slot lapsed and y has waited a while.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go live.Run(ctx)
		require.Eventually(t, func() bool { return len(b.eng.takeWoken()) > 0 }, 5*time.Second, 10*time.Millisecond)
		require.GreaterOrEqual(t, time.Since(killed), 250*time.Millisecond, "not before the lease ran out")
		ay := admit(t, live, y, charging)
		requireAdmitted(t, ay)
		// The janitor may have woken y again before it was admitted; a
		// repeated wake is harmless, and y waits no more.
		b.eng.takeWoken()
		// x, re-driven after its worker died, finds y holding the slot.
		require.True(t, admit(t, live, x, charging).Park)
		ay.Done(context.Background(), nil)
		// x is woken; a janitor's sweep that read the line before y was
		// admitted may still wake y once more, which is harmless.
		woken := b.eng.takeWoken()
		require.Contains(t, woken, "x")
		require.Subset(t, []string{"x", "y"}, woken)
		ax := admit(t, live, x, charging)
		requireAdmitted(t, ax)
		ax.Done(context.Background(), nil)
		b.requireLineEmpty(t, "c:charge:customer_id:cust")
		// The janitor drops the line from its index.
		require.Eventually(t, func() bool { return b.rdb.ZCard(ctx, waitingKey).Val() == 0 }, 5*time.Second, 10*time.Millisecond)
	})
}

func TestConcurrencyRedrivenInstanceWaitsForItsEarlierAttempt(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{Limits: []Limit{{Step: "charge", Field: "customer_id", Max: 1}}})
		charging := b.state(statemachine.OrderCharging)
		x, y := b.instance(t, "x", "cust", statemachine.OrderCharging), b.instance(t, "y", "cust", statemachine.OrderCharging)
		first := admit(t, f, x, charging)
		requireAdmitted(t, first)
		require.True(t, admit(t, f, y, charging).Park)
		// x's run lost its lease while its call still runs, and another
		// run of x asks: it waits too, behind y.
		require.True(t, admit(t, f, x, charging).Park, "the provider never sees two attempts of x at once either")
		first.Done(context.Background(), nil)
		require.Equal(t, []string{"y"}, b.eng.takeWoken())
		ay := admit(t, f, y, charging)
		requireAdmitted(t, ay)
		ay.Done(context.Background(), nil)
		require.Equal(t, []string{"x"}, b.eng.takeWoken())
		second := admit(t, f, x, charging)
		requireAdmitted(t, second)
		second.Done(context.Background(), nil)
		b.requireLineEmpty(t, "c:charge:customer_id:cust")
	})
}

func TestConcurrencyWakeSkipsWaitersThatLeft(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{Limits: []Limit{{Step: "charge", Field: "customer_id", Max: 1}}})
		charging := b.state(statemachine.OrderCharging)
		x, y, z := b.instance(t, "x", "cust", statemachine.OrderCharging), b.instance(t, "y", "cust", statemachine.OrderCharging),
			b.instance(t, "z", "cust", statemachine.OrderCharging)
		ax := admit(t, f, x, charging)
		requireAdmitted(t, ax)
		require.True(t, admit(t, f, y, charging).Park)
		require.True(t, admit(t, f, z, charging).Park)
		b.end(t, y) // cancelled while it waited
		ax.Done(context.Background(), nil)
		require.Equal(t, []string{"z"}, b.eng.takeWoken(), "y left the line; z is next")
		az := admit(t, f, z, charging)
		requireAdmitted(t, az)
		az.Done(context.Background(), nil)
		b.requireLineEmpty(t, "c:charge:customer_id:cust")
	})
}

func TestSettlingStepSharesTheSettledStepsSlot(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{
			Limits:  []Limit{{Step: "charge", Field: "customer_id", Max: 1}},
			Settles: map[string]Settle{"refund": {Step: "charge", Result: "transaction_id"}},
			Rates:   map[string]Rate{"payment": {PerSecond: 100000, Burst: 1}},
		})
		require.True(t, f.Governs(b.state(statemachine.OrderRefunding)))
		x := b.instance(t, "x", "cust", statemachine.OrderCharging)
		// y's charge is in doubt: its refund repeats the charge first.
		y := b.instance(t, "y", "cust", statemachine.OrderRefunding, "charge")
		// z's charge has a result: its refund calls refund only.
		z := b.instance(t, "z", "cust", statemachine.OrderRefunding)
		ax := admit(t, f, x, b.state(statemachine.OrderCharging))
		requireAdmitted(t, ax)
		require.True(t, admit(t, f, y, b.state(statemachine.OrderRefunding)).Park)
		az := admit(t, f, z, b.state(statemachine.OrderRefunding))
		requireAdmitted(t, az)
		az.Done(context.Background(), nil)
		ax.Done(context.Background(), nil)
		require.Equal(t, []string{"y"}, b.eng.takeWoken())
		ay := admit(t, f, y, b.state(statemachine.OrderRefunding))
		requireAdmitted(t, ay, "two tokens fit a burst of one")
		ay.Done(context.Background(), nil)
	})
}

func TestBreakerOpensProbesAndRamps(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{Breaker: BreakerConfig{ErrorRate: 0.5, MinCalls: 4, Window: 5 * time.Second, OpenFor: 500 * time.Millisecond, Ramp: 3 * time.Second, RampStart: 1}})
		admin := NewAdmin(b.rdb, nil)
		ctx := context.Background()
		require.NoError(t, f.Publish(ctx))
		charging := b.state(statemachine.OrderCharging)
		in := b.instance(t, "x", "cust", statemachine.OrderCharging)
		outcomes := []error{nil, errUnavailable, &providers.Error{Provider: "payment", Op: "charge", Status: 402, Code: providers.CodeCardDeclined}, errUnavailable}
		for _, err := range outcomes {
			a := admit(t, f, in, charging)
			requireAdmitted(t, a)
			a.Done(ctx, err)
		}
		p, err := admin.Get(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, StateOpen, p.State, "2 errors in 4 calls reach 0.5 (a decline is a call that worked)")
		require.Equal(t, 0.5, p.ErrorRate)
		require.NotNil(t, p.OpenedAt)
		a := admit(t, f, in, charging)
		require.Positive(t, a.Wait, "open: every step waits")
		require.Nil(t, a.Done)

		// probe waits until the circuit lets an attempt through: the probe.
		probe := func() engine.Admission {
			var a engine.Admission
			require.Eventually(t, func() bool {
				a = admit(t, f, in, charging)
				return a.Wait == 0
			}, 5*time.Second, 20*time.Millisecond)
			requireAdmitted(t, a)
			return a
		}
		a = probe()
		p, err = admin.Get(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, StateHalfOpen, p.State)
		require.Positive(t, admit(t, f, in, charging).Wait, "one probe at a time")
		a.Done(ctx, errUnavailable)
		p, err = admin.Get(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, StateOpen, p.State, "a failed probe opens the circuit again")

		probe().Done(ctx, nil)
		p, err = admin.Get(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, StateClosed, p.State)
		require.Nil(t, p.OpenedAt)
		require.Zero(t, p.ErrorRate, "the errors before the recovery no longer count")
		require.Positive(t, p.RateLimitRPS, "ramping")
		require.Less(t, p.RateLimitRPS, 8.0)

		// The ramp starts at 1 call a second: the next attempt waits.
		a = admit(t, f, in, charging)
		requireAdmitted(t, a)
		a.Done(ctx, nil)
		require.Positive(t, admit(t, f, in, charging).Wait, "the ramp's rate limit")

		m := f.metrics.Transitions
		for tr, n := range map[[2]string]float64{
			{"closed", "open"}: 1, {"open", "half_open"}: 2, {"half_open", "open"}: 1, {"half_open", "closed"}: 1,
		} {
			require.Equal(t, n, testutil.ToFloat64(m.WithLabelValues("payment", tr[0], tr[1])), "%s>%s", tr[0], tr[1])
		}
	})
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{Gate: true, PauseRecheck: 300 * time.Millisecond})
		admin := NewAdmin(b.rdb, nil)
		ctx := context.Background()
		charging := b.state(statemachine.OrderCharging)
		in := b.instance(t, "x", "cust", statemachine.OrderCharging)
		p, err := admin.Pause(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, StatePaused, p.State)
		a := admit(t, f, in, charging)
		require.GreaterOrEqual(t, a.Wait, 300*time.Millisecond)
		require.Contains(t, a.Reason, "paused")
		a = admit(t, f, b.instance(t, "y", "c", statemachine.OrderReserving), b.state(statemachine.OrderReserving))
		requireAdmitted(t, a, "other providers go on")
		a.Done(ctx, nil)
		p, err = admin.Resume(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, StateClosed, p.State)
		a = admit(t, f, in, charging)
		requireAdmitted(t, a)
		p, err = admin.Get(ctx, "payment")
		require.NoError(t, err)
		require.Equal(t, int64(1), p.InFlight)
		a.Done(ctx, nil)
		p, err = admin.Get(ctx, "payment")
		require.NoError(t, err)
		require.Zero(t, p.InFlight)

		_, err = admin.Pause(ctx, "bank")
		require.ErrorIs(t, err, ErrUnknownProvider)
		list, err := admin.List(ctx)
		require.NoError(t, err)
		require.Len(t, list, len(DefaultProviders))
	})
}

func TestA429HoldsTheProviderForEveryWorker(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		w1, w2 := b.flow(t, Config{Gate: true}), b.flow(t, Config{Gate: true})
		charging := b.state(statemachine.OrderCharging)
		a := admit(t, w1, b.instance(t, "x", "c", statemachine.OrderCharging), charging)
		requireAdmitted(t, a)
		a.Done(context.Background(), &providers.Error{Provider: "payment", Op: "charge", Status: 429, RetryAfter: 2 * time.Second})
		a = admit(t, w2, b.instance(t, "y", "d", statemachine.OrderCharging), charging)
		require.Greater(t, a.Wait, time.Second, "another worker waits out the Retry-After")
		require.Contains(t, a.Reason, "hold")
	})
}

// A stray 429 among many answered calls holds the provider only for a
// share of its Retry-After; once 429s are half the window's calls, a 429
// holds it for the whole Retry-After.
func TestA429HoldIsScaledByTheShareOf429s(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{Gate: true})
		ctx := context.Background()
		charging := b.state(statemachine.OrderCharging)
		in := b.instance(t, "x", "c", statemachine.OrderCharging)
		limited := &providers.Error{Provider: "payment", Op: "charge", Status: 429, RetryAfter: 4 * time.Second}
		for range 19 {
			a := admit(t, f, in, charging)
			requireAdmitted(t, a)
			a.Done(ctx, nil)
		}
		a := admit(t, f, in, charging)
		requireAdmitted(t, a)
		a.Done(ctx, limited)
		// 1 429 in 20 calls: a tenth of the full share, 0.4s of 4s.
		a = admit(t, f, in, charging)
		require.Contains(t, a.Reason, "hold")
		require.Greater(t, a.Wait, 200*time.Millisecond)
		require.LessOrEqual(t, a.Wait, 600*time.Millisecond, "not the whole Retry-After")

		// Another provider, answering one call of two 429: held in full.
		shipping := b.state(statemachine.OrderShipping)
		sh := b.instance(t, "s", "c", statemachine.OrderShipping)
		a = admit(t, f, sh, shipping)
		requireAdmitted(t, a)
		a.Done(ctx, nil)
		a = admit(t, f, sh, shipping)
		requireAdmitted(t, a)
		a.Done(ctx, &providers.Error{Provider: "shipping", Op: "ship", Status: 429, RetryAfter: 4 * time.Second})
		a = admit(t, f, sh, shipping)
		require.Greater(t, a.Wait, 3*time.Second, "the whole Retry-After")
	})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, outcomeOK},
		{engine.ErrNotAttempted, outcomeNone},
		{errUnavailable, outcomeErr},
		{&providers.Error{Provider: "payment", Op: "charge", Status: 402, Code: providers.CodeCardDeclined}, outcomeOK},
		{&providers.Error{Provider: "payment", Op: "charge", Status: 409, Code: providers.CodeInProgress}, outcomeNone},
		{&providers.Error{Provider: "payment", Op: "charge", Status: 401}, outcomeErr},
		{&providers.Error{Provider: "payment", Op: "charge", Status: 429}, outcomeLimited},
		{&providers.Error{Provider: "payment", Op: "charge", Err: context.DeadlineExceeded}, outcomeErr},
		{&providers.Error{Provider: "payment", Op: "charge", Err: context.Canceled}, outcomeNone},
		{fmt.Errorf("decoding input: %w", engine.Permanent(fmt.Errorf("bad"))), outcomeNone},
	} {
		got, _ := classify(c.err)
		require.Equal(t, c.want, got, "%v", c.err)
	}
}

// The janitor wakes the first waiter of a line as soon as it finds the slot
// of a dead holder lapsed, however lately that waiter asked: it was parked
// behind the dead holder, and nothing else wakes it.
func TestConcurrencyJanitorWakesTheHeadWhenADeadHoldersSlotLapses(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		cfg := Config{Limits: []Limit{{Step: "charge", Field: "customer_id", Max: 1}}, Lease: 600 * time.Millisecond, JanitorInterval: time.Second}
		live := b.flow(t, cfg)
		deadRedis := r.Client(t)
		dead, err := New(deadRedis, cfg, nil)
		require.NoError(t, err)
		dead.Attach(b.eng)
		charging := b.state(statemachine.OrderCharging)
		x, y := b.instance(t, "x", "cust", statemachine.OrderCharging), b.instance(t, "y", "cust", statemachine.OrderCharging)
		requireAdmitted(t, admit(t, dead, x, charging))
		require.NoError(t, deadRedis.Close())
		ctx := context.Background()
		require.NoError(t, live.sweep(ctx))
		require.Empty(t, b.eng.takeWoken(), "nobody waits yet")
		require.True(t, admit(t, live, y, charging).Park)
		require.NoError(t, live.sweep(ctx))
		require.Empty(t, b.eng.takeWoken(), "x's slot is still live")
		time.Sleep(800 * time.Millisecond)
		require.NoError(t, live.sweep(ctx))
		require.Equal(t, []string{"y"}, b.eng.takeWoken(), "x's slot lapsed: y is woken at once, not two janitor intervals after it asked")
		requireAdmitted(t, admit(t, live, y, charging))
	})
}

// The rate limit's line is first come, first served: an attempt given a
// place keeps it when it asks again early (asynq runs delayed tasks up to a
// second early) or twice, and a newcomer takes its place behind the line
// rather than the token of a waiter whose turn came. Before, every denied
// ask took a new place at the end of the line, and a waiter could be sent
// back again and again.
func TestRateLimitLineIsFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		f := b.flow(t, Config{Rates: map[string]Rate{"payment": {PerSecond: 4, Burst: 1}}})
		charging := b.state(statemachine.OrderCharging)
		x, y, z := b.instance(t, "x", "c1", statemachine.OrderCharging), b.instance(t, "y", "c2", statemachine.OrderCharging),
			b.instance(t, "z", "c3", statemachine.OrderCharging)
		ax := admit(t, f, x, charging)
		requireAdmitted(t, ax)
		ax.Done(context.Background(), nil)
		wy := admit(t, f, y, charging).Wait
		require.Positive(t, wy)
		// y asks again early: it keeps its place, and the line does not grow.
		again := admit(t, f, y, charging).Wait
		require.Positive(t, again)
		require.Less(t, again, wy+wy/4+time.Millisecond, "the same place, jittered")
		wz := admit(t, f, z, charging).Wait
		require.Less(t, wz, wy+400*time.Millisecond, "z is next after y: y's second ask took no place")
		// y's turn comes; z, asking at the same moment, may not take it.
		time.Sleep(wy + 20*time.Millisecond)
		require.Positive(t, admit(t, f, z, charging).Wait, "z waits for its own place")
		ay := admit(t, f, y, charging)
		requireAdmitted(t, ay)
		ay.Done(context.Background(), nil)
		time.Sleep(300 * time.Millisecond)
		az := admit(t, f, z, charging)
		requireAdmitted(t, az)
		az.Done(context.Background(), nil)
	})
}
