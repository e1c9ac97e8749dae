package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// Flow control across several workers, checked from the providers' side:
// the simulators keep a call log (SimConfig.CallLog) that the audit's flow
// rules read.

// postMany posts n orders of the customers given in turn, named
// prefix-<i>, and returns their IDs.
func (b *testBundle) postMany(t *testing.T, prefix string, n int, customers ...string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		b.post(t, order(ids[i], customers[i%len(customers)]))
	}
	return ids
}

// waitFinished waits until every order is finished and returns them.
func (b *testBundle) waitFinished(t *testing.T, ids []string, within time.Duration) map[string]*statemachine.Instance {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out := map[string]*statemachine.Instance{}
		running := ""
		for _, id := range ids {
			in, err := b.store.Load(context.Background(), id)
			require.NoError(t, err)
			if !in.Status.Terminal() {
				running = fmt.Sprintf("%s in %s (attempts %v, last error %q)", id, in.State, in.Attempts, in.LastError)
				break
			}
			out[id] = in
		}
		if running == "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("orders still unfinished after %s: %s", within, running)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditFlow audits the system with the flow limits and requires no
// violation; it returns what the providers saw.
func (b *testBundle) auditFlow(t *testing.T, limits *audit.FlowLimits) *audit.FlowReport {
	t.Helper()
	require.NoError(t, b.sim.Simulator().FlushCalls(t.Context()))
	rep, err := audit.Run(context.Background(), b.client(), audit.Config{Flow: limits})
	require.NoError(t, err)
	require.True(t, rep.OK(), "violations: %v", rep.Violations)
	return rep.Flow
}

// TestRateLimitHoldsAcrossWorkers runs 3 workers against a payment and an
// inventory rate limit of 20 calls a second, burst 5: no provider sees more
// in any one second, and no order uses an attempt waiting for its turn.
func TestRateLimitHoldsAcrossWorkers(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rates := map[string]flowcontrol.Rate{"payment": {PerSecond: 20, Burst: 5}, "inventory": {PerSecond: 20, Burst: 5}}
		o := options{noWorker: true, sim: providers.SimConfig{CallLog: true}, flow: flowcontrol.Config{Rates: rates}}
		b := setup(t, r, o)
		for range 3 {
			b.startWorker(t, o)
		}
		ids := b.postMany(t, "rate", 80, "c1", "c2", "c3", "c4")
		done := b.waitFinished(t, ids, time.Minute)
		for id, in := range done {
			require.Equal(t, statemachine.StatusCompleted, in.Status, id)
			require.Equal(t, 1, in.Attempts[statemachine.StepCharge], "%s: waiting for the rate limit uses no attempt", id)
			require.Equal(t, 1, in.Attempts[statemachine.StepReserve], id)
		}
		seen := b.auditFlow(t, &audit.FlowLimits{Rates: map[string]audit.RateLimit{
			"payment": {PerSecond: 20, Burst: 5}, "inventory": {PerSecond: 20, Burst: 5},
		}})
		t.Logf("%s: most calls in one second: payment %d, inventory %d (limit 20/s, burst 5)", r.Backend,
			seen.MaxPerSecond["payment"], seen.MaxPerSecond["inventory"])
		require.Equal(t, 80, seen.Calls["payment"])
		require.Greater(t, seen.MaxPerSecond["payment"], 5, "the limit was reached: orders queued for it")
	})
}

// TestA429HoldsEveryWorker: one worker's 429 with Retry-After: 2 holds the
// payment provider for every worker.
func TestA429HoldsEveryWorker(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		o := options{noWorker: true, sim: providers.SimConfig{CallLog: true,
			Payment: providers.Faults{RateLimitRate: 1, RetryAfter: 2 * time.Second}}, flow: flowcontrol.Config{Gate: true}}
		b := setup(t, r, o)
		for range 3 {
			b.startWorker(t, o)
		}
		b.post(t, order("hold-0", "c0"))
		waitFor(t, settle, "the first charge to be answered 429", func() bool { return b.get(t, "hold-0").Attempts["charge"] >= 1 && b.get(t, "hold-0").LastError != "" })
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{}))
		ids := append([]string{"hold-0"}, b.postMany(t, "hold-n", 10, "c1", "c2")...)
		done := b.waitFinished(t, ids, time.Minute)
		for id, in := range done {
			require.Equal(t, statemachine.StatusCompleted, in.Status, id)
		}
		// From the provider's side: nothing came within the hold after the
		// 429 was answered.
		require.NoError(t, b.sim.Simulator().FlushCalls(t.Context()))
		var limited time.Time
		var after []time.Time
		calls := map[string]providers.CallEvent{}
		require.NoError(t, b.ledger.ScanCalls(context.Background(), providers.ProviderPayment, func(ev providers.CallEvent) error {
			if ev.Event == providers.CallStart {
				calls[ev.Call] = ev
				if !limited.IsZero() {
					after = append(after, ev.At)
				}
				return nil
			}
			if limited.IsZero() {
				limited = ev.At // the first call's end: its 429
			}
			return nil
		}))
		require.NotEmpty(t, after)
		sort.Slice(after, func(i, j int) bool { return after[i].Before(after[j]) })
		gap := after[0].Sub(limited)
		t.Logf("%s: the next payment call came %s after the 429 (Retry-After 2s)", r.Backend, gap.Round(time.Millisecond))
		require.Greater(t, gap, 1800*time.Millisecond)
	})
}

// TestConcurrencyLimitHoldsUnderKills runs 3 worker processes with
// --limit charge:customer_id=1 against a payment provider that is slow
// and fails a fifth of its calls, SIGKILLs one of them mid-run, and checks
// from the provider's side that no customer ever had two charges in flight,
// that every order completed, and that no slot or waiter is left.
func TestConcurrencyLimitHoldsUnderKills(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true, sim: providers.SimConfig{CallLog: true,
			Payment: providers.Faults{Latency: 80 * time.Millisecond, FailureRate: 0.2}}})
		args := append(b.workerArgs("1s"), "--limit", "charge:customer_id=1", "--concurrency", "6", "--provider-timeout", "5s")
		workers := []*process{startProcess(t, args...), startProcess(t, args...), startProcess(t, args...)}
		customers := []string{"alice", "bob", "carol"}
		ids := b.postMany(t, "conc", 36, customers...)
		waitFor(t, settle, "some charges", func() bool {
			n := 0
			for _, id := range ids {
				n += b.effects(t, id)["charge"]
			}
			return n >= 6
		})
		workers[0].signal(syscall.SIGKILL)
		startProcess(t, args...)
		done := b.waitFinished(t, ids, 2*time.Minute)
		retried := 0
		for id, in := range done {
			require.Equal(t, statemachine.StatusCompleted, in.Status, id)
			if in.Attempts["charge"] > 1 {
				retried++
			}
		}
		seen := b.auditFlow(t, &audit.FlowLimits{Concurrency: []audit.ConcurrencyLimit{{Provider: "payment", Op: "charge", Max: 1}}})
		t.Logf("%s: %d charge calls, %d orders retried a charge, most charges of one customer in flight: %d", r.Backend,
			seen.Calls["payment"], retried, seen.MaxInFlight["payment charge"])
		require.Equal(t, 1, seen.MaxInFlight["payment charge"])
		require.Positive(t, retried, "retries ran")

		// Nothing is left: no slot held, nobody waiting, and the janitor
		// has dropped the lines from its index.
		ctx := context.Background()
		rdb := b.client()
		for _, c := range customers {
			tag := "{c:charge:customer_id:" + c + "}"
			held := rdb.ZCount(ctx, "of:flow:"+tag+":h", strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Val()
			require.Zero(t, held, "slots of %s", c)
			require.Zero(t, rdb.ZCard(ctx, "of:flow:"+tag+":w").Val(), "waiters of %s", c)
		}
		waitFor(t, 10*time.Second, "the janitor to empty its index", func() bool { return rdb.ZCard(ctx, "of:flow:waiting").Val() == 0 })
	})
}

// TestBreakerRidesOutAProviderOutage takes the payment provider down for
// 10s while orders flow: the breaker opens, steps wait without using
// attempts, probes find the provider back, traffic ramps up again, and
// every order completes; none fails or runs out of attempts.
func TestBreakerRidesOutAProviderOutage(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		// The real retry policies (6 attempts over about 6s): without the
		// breaker a 10s outage would fail orders.
		o := options{noWorker: true, sim: providers.SimConfig{CallLog: true, Payment: providers.Faults{Latency: 5 * time.Millisecond}},
			workerRegistry: statemachine.NewOrderRegistry(),
			flow:           flowcontrol.Config{Breaker: flowcontrol.BreakerConfig{ErrorRate: 0.5, Window: 4 * time.Second, MinCalls: 3, OpenFor: time.Second}}}
		b := setup(t, r, o)
		for range 3 {
			b.startWorker(t, o)
		}
		sim := b.sim.Simulator()
		states := map[string]bool{}
		poll := func() {
			res := b.do(t, http.MethodGet, "/v1/providers", nil)
			require.Equal(t, http.StatusOK, res.status)
			var body struct {
				Providers []flowcontrol.Provider `json:"providers"`
			}
			res.json(t, &body)
			for _, p := range body.Providers {
				if p.Name == "payment" {
					states[p.State] = true
				}
			}
		}
		var ids []string
		post := func(n int) {
			for range n {
				id := fmt.Sprintf("outage-%d", len(ids))
				ids = append(ids, id)
				b.post(t, order(id, "c"+strconv.Itoa(len(ids)%7)))
			}
		}
		post(10)
		// The outage: every payment call fails for 10s, while orders keep
		// coming.
		require.NoError(t, sim.SetFaults(providers.ProviderPayment, providers.Faults{FailureRate: 1, Latency: 5 * time.Millisecond}))
		down := time.Now()
		for time.Since(down) < 10*time.Second {
			post(1)
			poll()
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, sim.SetFaults(providers.ProviderPayment, providers.Faults{Latency: 5 * time.Millisecond}))
		post(10)
		done := b.waitFinished(t, ids, 90*time.Second)
		most, failed, worst := 0, 0, ""
		for id, in := range done {
			if in.Attempts["charge"] > most {
				most, worst = in.Attempts["charge"], id
			}
			if in.Attempts["charge"] > 1 {
				failed++
			}
		}
		if most >= 5 || t.Failed() {
			for _, ev := range b.history(t, worst) {
				t.Logf("%s %s: %s %s>%s %s attempt %d %s %s", worst, ev.At.Format("15:04:05.000"), ev.Type, ev.From, ev.To, ev.Step, ev.Attempt, ev.Error, ev.Detail)
			}
			t.Logf("outage from %s to %s", down.Format("15:04:05.000"), down.Add(10*time.Second).Format("15:04:05.000"))
		}
		for id, in := range done {
			require.Equal(t, statemachine.StatusCompleted, in.Status, "%s: %s", id, in.LastError)
		}
		poll()
		t.Logf("%s: %d orders, %d saw a failed charge, the most charge attempts of one order: %d (of 6); states seen: %v",
			r.Backend, len(ids), failed, most, states)
		require.True(t, states[flowcontrol.StateOpen], "the circuit opened during the outage")
		require.Less(t, most, 6, "no order ran out of attempts")
		p := b.providerState(t, "payment")
		require.Equal(t, flowcontrol.StateClosed, p.State)
	})
}

func (b *testBundle) providerState(t *testing.T, name string) flowcontrol.Provider {
	t.Helper()
	res := b.do(t, http.MethodGet, "/v1/providers", nil)
	require.Equal(t, http.StatusOK, res.status)
	var body struct {
		Providers []flowcontrol.Provider `json:"providers"`
	}
	res.json(t, &body)
	for _, p := range body.Providers {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no provider %s in %s", name, res.body)
	return flowcontrol.Provider{}
}

// TestPausedProviderStopsEveryWorker: an operator pauses payment through
// the API; no worker charges anyone, and no attempt is used, until it is
// resumed.
func TestPausedProviderStopsEveryWorker(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		o := options{noWorker: true, flow: flowcontrol.Config{Gate: true, PauseRecheck: 200 * time.Millisecond}}
		b := setup(t, r, o)
		b.startWorker(t, o)
		b.startWorker(t, o)
		res := b.do(t, http.MethodPost, "/v1/providers/payment/pause", map[string]string{"reason": "test"})
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		ids := b.postMany(t, "paused", 5, "c1", "c2")
		for _, id := range ids {
			b.waitState(t, id, settle, statemachine.OrderCharging)
		}
		time.Sleep(time.Second) // several rechecks; nothing may move
		for _, id := range ids {
			o := b.get(t, id)
			require.Equal(t, statemachine.OrderCharging, o.State)
			require.Zero(t, o.Attempts["charge"], "a paused provider uses no attempt")
			require.Zero(t, b.effects(t, id)["charge"])
		}
		require.Equal(t, flowcontrol.StatePaused, b.providerState(t, "payment").State)
		res = b.do(t, http.MethodPost, "/v1/providers/payment/resume", nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		for id, in := range b.waitFinished(t, ids, time.Minute) {
			require.Equal(t, statemachine.StatusCompleted, in.Status, id)
			require.Equal(t, 1, in.Attempts["charge"], id)
		}
	})
}

// recordingSet wraps providers to record which operations a worker ran.
type recordingSet struct {
	name string
	log  chan<- string
}

func (r recordingSet) wrap(p providers.Set) providers.Set {
	return providers.Set{
		Inventory: recordingInventory{p.Inventory, r},
		Payment:   recordingPayment{p.Payment, r},
		Shipping:  recordingShipping{p.Shipping, r},
	}
}

type recordingInventory struct {
	providers.Inventory
	r recordingSet
}

func (i recordingInventory) Reserve(ctx context.Context, req providers.ReserveRequest) (string, error) {
	i.r.log <- i.r.name + " reserve"
	return i.Inventory.Reserve(ctx, req)
}

func (i recordingInventory) Release(ctx context.Context, req providers.ReleaseRequest) error {
	i.r.log <- i.r.name + " release"
	return i.Inventory.Release(ctx, req)
}

type recordingPayment struct {
	providers.Payment
	r recordingSet
}

func (p recordingPayment) Charge(ctx context.Context, req providers.ChargeRequest) (string, error) {
	p.r.log <- p.r.name + " charge"
	return p.Payment.Charge(ctx, req)
}

func (p recordingPayment) Refund(ctx context.Context, req providers.RefundRequest) (string, error) {
	p.r.log <- p.r.name + " refund"
	return p.Payment.Refund(ctx, req)
}

type recordingShipping struct {
	providers.Shipping
	r recordingSet
}

func (s recordingShipping) Ship(ctx context.Context, req providers.ShipRequest) (string, error) {
	s.r.log <- s.r.name + " ship"
	return s.Shipping.Ship(ctx, req)
}

// TestWorkersServeOnlyTheirQueues runs a worker serving only payments and
// one serving the rest: the first runs every charge and nothing else, the
// second never charges, and every order completes (each hop between them
// goes through its queue).
func TestWorkersServeOnlyTheirQueues(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		calls := make(chan string, 1000)
		b := setup(t, r, options{noWorker: true})
		b.startWorker(t, options{queues: map[string]int{statemachine.QueuePayments: 1}, wrap: recordingSet{"payments", calls}.wrap})
		b.startWorker(t, options{queues: map[string]int{statemachine.DefaultQueue: 1, statemachine.QueueInventory: 1, statemachine.QueueShipping: 1},
			wrap: recordingSet{"others", calls}.wrap})
		ids := b.postMany(t, "queues", 20, "c1", "c2")
		for id, in := range b.waitFinished(t, ids, time.Minute) {
			require.Equal(t, statemachine.StatusCompleted, in.Status, id)
		}
		close(calls)
		ran := map[string]int{}
		for c := range calls {
			ran[c]++
		}
		require.Equal(t, map[string]int{"payments charge": 20, "others reserve": 20, "others ship": 20}, ran)
	})
}

// TestLowPriorityOrdersCompleteUnderAHighPriorityFlood: a worker with
// little concurrency gets 20 low-priority orders and then a flood of 150
// high-priority ones; every low one completes, and the high ones, though
// they came later, are not behind them.
func TestLowPriorityOrdersCompleteUnderAHighPriorityFlood(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		o := options{concurrency: 2, sim: providers.SimConfig{Inventory: providers.Faults{Latency: 5 * time.Millisecond}}}
		b := setup(t, r, o)
		post := func(prefix string, n int, p statemachine.Priority) []string {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("%s-%d", prefix, i)
				req := order(ids[i], "c")
				req.Priority = string(p)
				b.post(t, req)
			}
			return ids
		}
		low := post("low", 20, statemachine.PriorityLow)
		high := post("high", 150, statemachine.PriorityHigh)
		finished := func(ids []string) []time.Time {
			var at []time.Time
			for id, in := range b.waitFinished(t, ids, 2*time.Minute) {
				require.Equal(t, statemachine.StatusCompleted, in.Status, id)
				at = append(at, in.Updated)
			}
			sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
			return at
		}
		lowAt, highAt := finished(low), finished(high)
		t.Logf("%s: low orders finished from %s to %s; high ones from %s to %s", r.Backend,
			lowAt[0].Format("15:04:05.000"), lowAt[len(lowAt)-1].Format("15:04:05.000"),
			highAt[0].Format("15:04:05.000"), highAt[len(highAt)-1].Format("15:04:05.000"))
		require.True(t, lowAt[len(lowAt)/2].Before(highAt[len(highAt)-1]), "low orders are not starved until the flood is over")
	})
}
