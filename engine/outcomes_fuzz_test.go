package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The outcomes an activity call can have in FuzzEngineOutcomes: each call
// takes the next script byte, modulo fuzzOutcomeCount. When the script runs
// out every call succeeds, so compensation always ends.
const (
	fuzzSuccess     = iota // the provider answers
	fuzzUnavailable        // 503 before anything was applied: retryable, ambiguous
	fuzzLostAnswer         // the provider applies the effect, then answers 500: retryable, ambiguous
	fuzzRateLimited        // 429: retryable, not ambiguous
	fuzzPermanent          // the named decline of the step (409 out_of_stock, 402 card_declined, 422 undeliverable); a 400 to a compensation
	fuzzCancelNow          // a cancel signal arrives while the step runs; the next byte answers
	fuzzCancelAfter        // a cancel signal arrives after this task ends; the next byte answers
	fuzzSuccessToo         // the provider answers
	fuzzInProgress         // the provider is still working on the key: it applies the effect, but answers 409 idempotency_key_in_use
	fuzzStray401           // a 401 after a credential rotation, nothing applied: not a decline
	fuzzStray404           // a gateway's 404, nothing applied: not a decline
	fuzzOutcomeCount
)

// fuzzMaxScript bounds the script so an execution stays short.
const fuzzMaxScript = 48

// FuzzEngineOutcomes drives the real engine over miniredis through one
// order, with each activity call's outcome taken from the fuzz bytes, over a
// copy of OrderV1 that retries at once (3 attempts per forward step). The
// first byte is a mode: bit 0 sends a cancel before the first task runs. The
// queued tasks run until none is left, their delays ignored.
//
// Properties: the order ends terminal and holds no lease; completed means
// reserve, charge and ship were applied exactly once each and nothing was
// undone; failed or cancelled means every charge was refunded, every
// reservation released and nothing shipped; the history's seq has no gaps
// and every transition in it is one the definition allows, chained from the
// initial state to the final one.
func FuzzEngineOutcomes(f *testing.F) {
	for _, s := range [][]byte{
		{},                          // the happy path
		{1},                         // cancelled while pending
		{0, 1, 3, 0},                // reserve: 503, 429, then success
		{0, 4},                      // reserve declined: failed, nothing to undo
		{0, 0, 4},                   // charge declined: release
		{0, 0, 0, 4},                // ship refused: refund, release
		{0, 1, 1, 1},                // reserve exhausted without an answer: settle, release
		{0, 0, 2, 1, 1},             // charge exhausted after an applied charge: refund, release
		{0, 5, 0},                   // cancel while reserving
		{0, 0, 5, 2, 1, 4, 2},       // cancel while charging, the charge answer lost; compensation fails a while
		{0, 0, 6, 1, 0},             // cancel while the charge waits for its retry
		{0, 0, 0, 5, 0},             // cancel while shipping is refused
		{0, 0, 0, 2, 0},             // ship answer lost, then the first answer
		{0, 2, 4, 0, 0},             // reserve applied but answered 500, then a decline: the provider keeps the first answer
		{0, 3, 3, 5, 1, 1, 1, 1, 4}, // cancel on the last attempt, compensation retried
	} {
		f.Add(s)
	}

	r := redistest.New(f, redistest.BackendMiniredis)
	store := statemachine.NewStore(r.Client(f), statemachine.StoreConfig{})
	f.Cleanup(store.Close)
	def := statemachine.OrderV1()
	for i := range def.States {
		s := &def.States[i]
		s.Retry.InitialInterval, s.Retry.MaxInterval = time.Millisecond, time.Millisecond
		// Fewer attempts, so runs end quickly; a step that is meant never to
		// give up (a huge MaxAttempts) keeps that: the script running out
		// into successes ends it.
		if !s.Compensation && s.Retry.MaxAttempts < 1000 {
			s.Retry.MaxAttempts = 3
		}
		// Steps that never give up are dead-lettered after their attempts;
		// the run below then retries them as an operator would.
		if s.Compensation || s.Irreversible {
			s.Retry.MaxAttempts = 4
		}
	}
	reg := statemachine.NewRegistry().MustRegister(def)
	log := slog.New(slog.DiscardHandler)
	input, err := json.Marshal(orders.Input{CustomerID: "c", Currency: "USD", AmountCents: 300,
		Items: []orders.Item{{SKU: "A", Qty: 3, UnitPriceCents: 100}}})
	require.NoError(f, err)
	execs := 0

	f.Fuzz(func(t *testing.T, script []byte) {
		if execs++; execs%1000 == 0 {
			r.Mini.FlushAll() // every execution has its own order; keep Redis small
		}
		if len(script) > fuzzMaxScript {
			script = script[:fuzzMaxScript]
		}
		ctx := context.Background()
		id := fmt.Sprintf("fz-%d", execs)
		mode := byte(0)
		if len(script) > 0 {
			mode, script = script[0], script[1:]
		}

		x := &fuzzRun{t: t, id: id, script: script, prov: providers.NewInProcess(), queue: &memQueue{}}
		eng, err := engine.New(engine.Config{Logger: log, Rand: func() float64 { return 0 }},
			store, reg, x.activities(), x.queue, nil)
		require.NoError(t, err)
		x.eng = eng

		_, err = eng.Start(ctx, engine.StartRequest{ID: id, Workflow: statemachine.OrderWorkflow, Input: input, Fingerprint: "fp"})
		require.NoError(t, err)
		if mode&1 == 1 {
			x.cancel(ctx)
		}
		for round := 0; ; round++ {
			ts := x.queue.take()
			if len(ts) == 0 {
				in, err := store.Load(ctx, id)
				require.NoError(t, err)
				if in.DeadLetter == "" {
					break
				}
				// Parked for an operator, who retries it.
				require.False(t, in.Status.Terminal())
				require.Empty(t, in.LeaseToken, "a parked order holds no lease")
				_, err = eng.RetryDeadLetter(ctx, id, "fuzz operator")
				require.NoError(t, err)
				x.retried++
				require.Less(t, x.retried, 50, "dead-lettered again and again")
				continue
			}
			require.Less(t, round, 500, "tasks kept coming")
			for _, task := range ts {
				require.NoError(t, eng.Advance(ctx, task.InstanceID, engine.AdvanceOptions{
					Queue: task.Queue, TaskID: task.TaskID, Hint: task.Hint,
				}))
				if x.cancelAfter {
					x.cancelAfter = false
					x.cancel(ctx)
				}
			}
		}
		require.NoError(t, x.signalErr)

		in, err := store.Load(ctx, id)
		require.NoError(t, err)
		st, ok := def.State(in.State)
		require.True(t, ok, "state %q", in.State)
		require.True(t, st.Terminal(), "the order stopped in %q with no task left", in.State)
		require.Equal(t, st.Status, in.Status)
		require.Empty(t, in.LeaseToken, "a finished order holds no lease")

		applied := map[string]int{}
		for _, op := range []string{providers.OpReserve, providers.OpCharge, providers.OpShip, providers.OpRefund, providers.OpRelease} {
			applied[op] = x.prov.Applied(op)
			require.LessOrEqual(t, applied[op], 1, "%s applied twice", op)
		}
		switch in.State {
		case statemachine.OrderCompleted:
			require.Equal(t, map[string]int{
				providers.OpReserve: 1, providers.OpCharge: 1, providers.OpShip: 1,
				providers.OpRefund: 0, providers.OpRelease: 0,
			}, applied)
		case statemachine.OrderFailed, statemachine.OrderCancelled:
			require.Equal(t, applied[providers.OpCharge], applied[providers.OpRefund], "every charge is refunded: %v", applied)
			require.Equal(t, applied[providers.OpReserve], applied[providers.OpRelease], "every reservation is released: %v", applied)
			require.Zero(t, applied[providers.OpShip], "shipped, yet the order ended %s: %v", in.State, applied)
			if in.State == statemachine.OrderCancelled {
				require.True(t, x.cancelled, "cancelled without a cancel")
			}
		default:
			t.Fatalf("unexpected terminal state %q", in.State)
		}

		evs, err := store.History(ctx, id)
		require.NoError(t, err)
		require.NotEmpty(t, evs)
		require.Equal(t, statemachine.EventCreated, evs[0].Type)
		cur := def.Initial
		for i, ev := range evs {
			require.Equal(t, i+1, ev.Seq, "history seq has a gap")
			if ev.Type != statemachine.EventTransition {
				continue
			}
			require.Equal(t, cur, ev.From, "transition %d leaves %q, the order was in %q", ev.Seq, ev.From, cur)
			dst, err := def.Destination(ev.From, ev.Event)
			require.NoError(t, err, "transition %d", ev.Seq)
			require.Equal(t, dst, ev.To, "transition %d", ev.Seq)
			cur = ev.To
		}
		require.Equal(t, in.State, cur, "the history ends where the order is")
	})
}

// fuzzRun is one execution of FuzzEngineOutcomes.
type fuzzRun struct {
	t      *testing.T
	id     string
	script []byte
	prov   *providers.InProcess
	queue  *memQueue
	eng    *engine.Engine

	cancelAfter bool  // send a cancel when the running task ends
	cancelled   bool  // a cancel was sent
	signalErr   error // the first error from Signal
	retried     int   // operator retries of dead-lettered steps
}

func (x *fuzzRun) next() (byte, bool) {
	if len(x.script) == 0 {
		return 0, false
	}
	c := x.script[0]
	x.script = x.script[1:]
	return c % fuzzOutcomeCount, true
}

func (x *fuzzRun) cancel(ctx context.Context) {
	x.cancelled = true
	if _, _, err := x.eng.Signal(ctx, x.id, statemachine.SignalCancel, ""); err != nil && x.signalErr == nil {
		x.signalErr = err
	}
}

// activities wraps the order activities over x.prov so that the script
// decides each call's outcome. The provider stays consistent: once an
// effect is applied, its key only ever answers with it, never a decline.
func (x *fuzzRun) activities() engine.Activities {
	base := orders.Activities(x.prov.Set())
	out := engine.Activities{}
	for step, act := range base {
		provider, decline, code := providers.ProviderPayment, http.StatusBadRequest, providers.CodeBadRequest
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
			for {
				c, ok := x.next()
				if !ok {
					return act(ctx, in)
				}
				switch c {
				case fuzzSuccess, fuzzSuccessToo:
					return act(ctx, in)
				case fuzzUnavailable:
					return nil, fail(http.StatusServiceUnavailable, providers.CodeUnavailable)
				case fuzzLostAnswer:
					_, _ = act(ctx, in)
					return nil, fail(http.StatusInternalServerError, providers.CodeInternal)
				case fuzzRateLimited:
					return nil, fail(http.StatusTooManyRequests, providers.CodeRateLimited)
				case fuzzPermanent:
					if x.prov.Applied(step) > 0 {
						return act(ctx, in) // the provider keeps its first answer
					}
					return nil, fail(decline, code)
				case fuzzInProgress:
					_, _ = act(ctx, in)
					return nil, fail(http.StatusConflict, "idempotency_key_in_use")
				case fuzzStray401:
					return nil, fail(http.StatusUnauthorized, "unauthorized")
				case fuzzStray404:
					return nil, fail(http.StatusNotFound, "not_found")
				case fuzzCancelNow:
					x.cancel(ctx)
				case fuzzCancelAfter:
					x.cancelAfter = true
				}
			}
		}
	}
	return out
}
