package orders_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// recorder is the in-process providers, recording every request they get.
type recorder struct {
	*providers.InProcess

	mu   sync.Mutex
	reqs []any
}

func (r *recorder) record(req any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
}

func (r *recorder) requests() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.reqs...)
}

func (r *recorder) Reserve(ctx context.Context, req providers.ReserveRequest) (string, error) {
	r.record(req)
	return r.InProcess.Reserve(ctx, req)
}

func (r *recorder) Release(ctx context.Context, req providers.ReleaseRequest) error {
	r.record(req)
	return r.InProcess.Release(ctx, req)
}

func (r *recorder) Charge(ctx context.Context, req providers.ChargeRequest) (string, error) {
	r.record(req)
	return r.InProcess.Charge(ctx, req)
}

func (r *recorder) Refund(ctx context.Context, req providers.RefundRequest) (string, error) {
	r.record(req)
	return r.InProcess.Refund(ctx, req)
}

func (r *recorder) Ship(ctx context.Context, req providers.ShipRequest) (string, error) {
	r.record(req)
	return r.InProcess.Ship(ctx, req)
}

// activityBundle is the order activities over recorded in-process providers.
type activityBundle struct {
	t   *testing.T
	p   *providers.InProcess
	rec *recorder
	act engine.Activities
}

// setupActivities builds the activities; configure changes the providers
// before the first call.
func setupActivities(t *testing.T, configure func(p *providers.InProcess)) *activityBundle {
	t.Helper()
	p := providers.NewInProcess()
	if configure != nil {
		configure(p)
	}
	rec := &recorder{InProcess: p}
	return &activityBundle{t: t, p: p, rec: rec,
		act: orders.Activities(providers.Set{Inventory: rec, Payment: rec, Shipping: rec})}
}

// run runs step's activity on in and requires success.
func (b *activityBundle) run(step string, in *statemachine.Instance) map[string]string {
	b.t.Helper()
	out, err := b.act[step](context.Background(), in)
	require.NoError(b.t, err, step)
	return out
}

// applied returns how often each operation's effect was applied.
func (b *activityBundle) applied() map[string]int {
	out := map[string]int{}
	for _, op := range []string{providers.OpReserve, providers.OpRelease, providers.OpCharge, providers.OpRefund, providers.OpShip} {
		if n := b.p.Applied(op); n > 0 {
			out[op] = n
		}
	}
	return out
}

func TestActivitiesCoverTheOrderSteps(t *testing.T) {
	t.Parallel()
	act := setupActivities(t, nil).act
	var steps []string
	for _, d := range statemachine.NewOrderRegistry().All() {
		for _, s := range d.States {
			if s.Step != "" && !slices.Contains(steps, s.Step) {
				steps = append(steps, s.Step)
			}
		}
	}
	require.Len(t, act, len(steps), "one activity for each step of every version, and no other")
	for _, step := range steps {
		require.NotNil(t, act[step], step)
	}
}

func TestActivitiesSendTheirKeysAndResults(t *testing.T) {
	t.Parallel()
	b := setupActivities(t, nil)
	in := newInstance(t, "o1", testInput())
	items := []providers.Item{{SKU: "SKU-ABC", Qty: 2}}

	out := b.run(statemachine.StepReserve, in)
	require.Equal(t, map[string]string{orders.ResultReservationID: "res_1"}, out)
	in.Results[orders.ResultReservationID] = out[orders.ResultReservationID]

	out = b.run(statemachine.StepCharge, in)
	require.Equal(t, map[string]string{orders.ResultTransactionID: "txn_2"}, out)
	in.Results[orders.ResultTransactionID] = out[orders.ResultTransactionID]

	out = b.run(statemachine.StepShip, in)
	require.Equal(t, map[string]string{orders.ResultTrackingNumber: "trk_3"}, out)

	out = b.run(statemachine.StepRefund, in)
	require.Equal(t, map[string]string{orders.ResultRefundID: "ref_4"}, out)

	require.Empty(t, b.run(statemachine.StepRelease, in))

	require.Equal(t, []any{
		providers.ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: items},
		providers.ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "cust-42", AmountCents: 4998, Currency: "USD"},
		providers.ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1", CustomerID: "cust-42", ReservationID: "res_1", Items: items},
		providers.RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: "txn_2", AmountCents: 4998, Currency: "USD"},
		providers.ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: "res_1"},
	}, b.rec.requests())
	require.Equal(t, map[string]int{"reserve": 1, "charge": 1, "ship": 1, "refund": 1, "release": 1}, b.applied())
}

// The compensations: refund undoes charge, release undoes reserve. Each does
// nothing when its step never ran or was declined, and settles a step whose
// outcome is unknown before undoing it.
func TestCompensations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name            string
		step, undo      string
		resultKey       string
		settled, undone string // operations
		decline         func(p *providers.InProcess)
		wantUndoResult  string
	}{
		{
			name: "refund", step: statemachine.StepCharge, undo: statemachine.StepRefund,
			resultKey: orders.ResultTransactionID, settled: providers.OpCharge, undone: providers.OpRefund,
			decline:        func(p *providers.InProcess) { p.DeclineCustomers = map[string]bool{"cust-42": true} },
			wantUndoResult: orders.ResultRefundID,
		},
		{
			name: "release", step: statemachine.StepReserve, undo: statemachine.StepRelease,
			resultKey: orders.ResultReservationID, settled: providers.OpReserve, undone: providers.OpRelease,
			decline: func(p *providers.InProcess) { p.OutOfStockSKUs = map[string]bool{"SKU-ABC": true} },
		},
	} {
		t.Run(c.name+" undoes nothing when the step never ran", func(t *testing.T) {
			t.Parallel()
			b := setupActivities(t, nil)
			require.Empty(t, b.run(c.undo, newInstance(t, "o1", testInput())))
			if c.undo == statemachine.StepRefund {
				// Driven by the key: a refund without a transaction ID, in
				// case a charge happened that the record lost. It applies
				// nothing when there was none.
				require.Equal(t, []any{providers.RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", AmountCents: 4998, Currency: "USD"}}, b.rec.requests())
			} else {
				require.Empty(t, b.rec.requests())
			}
			require.Empty(t, b.applied())
		})

		t.Run(c.name+" does nothing when the step was declined", func(t *testing.T) {
			t.Parallel()
			b := setupActivities(t, nil)
			in := newInstance(t, "o1", testInput())
			in.Attempts[c.step], in.Declined[c.step] = 2, true
			require.Empty(t, b.run(c.undo, in))
			require.Empty(t, b.rec.requests())
		})

		t.Run(c.name+" settles an attempt whose outcome is unknown", func(t *testing.T) {
			t.Parallel()
			b := setupActivities(t, nil)
			in := newInstance(t, "o1", testInput())
			in.Attempts[c.step] = 1
			first := b.run(c.undo, in)
			require.NotEmpty(t, first[c.resultKey], "the settled result is recorded")
			if c.wantUndoResult != "" {
				require.NotEmpty(t, first[c.wantUndoResult])
			}
			require.Equal(t, first, b.run(c.undo, in), "a second run answers the same")
			require.Equal(t, map[string]int{c.settled: 1, c.undone: 1}, b.applied(), "each effect is applied once")
			require.Equal(t, 2, b.p.Calls(c.settled))
			require.Equal(t, 2, b.p.Calls(c.undone))
		})

		t.Run(c.name+" does nothing when settling finds the step declined", func(t *testing.T) {
			t.Parallel()
			b := setupActivities(t, c.decline)
			in := newInstance(t, "o1", testInput())
			in.Attempts[c.step] = 1
			require.Empty(t, b.run(c.undo, in))
			require.Empty(t, b.applied())
			require.Equal(t, 1, b.p.Calls(c.settled))
			require.Zero(t, b.p.Calls(c.undone))
		})

		t.Run(c.name+" is retried when settling fails", func(t *testing.T) {
			t.Parallel()
			b := setupActivities(t, nil)
			in := newInstance(t, "o1", testInput())
			in.Attempts[c.step] = 1
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := b.act[c.undo](ctx, in)
			require.ErrorIs(t, err, context.Canceled)
			require.False(t, isPermanent(err), "a transient failure is retried: %v", err)
			require.Empty(t, b.applied())
			require.Zero(t, b.p.Calls(c.undone))
		})
	}
}

func isPermanent(err error) bool {
	var pe *engine.PermanentError
	return errors.As(err, &pe)
}

func TestActivitiesRefuseMalformedInput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		step   string
		change func(in *statemachine.Instance)
	}{
		{name: "reserve", step: statemachine.StepReserve},
		{name: "charge", step: statemachine.StepCharge},
		{name: "ship", step: statemachine.StepShip},
		{name: "refund", step: statemachine.StepRefund},
		{name: "refund settling", step: statemachine.StepRefund, change: func(in *statemachine.Instance) { in.Attempts[statemachine.StepCharge] = 1 }},
		{name: "release settling", step: statemachine.StepRelease, change: func(in *statemachine.Instance) { in.Attempts[statemachine.StepReserve] = 1 }},
	} {
		for name, input := range map[string][]byte{"not JSON": []byte("{not json"), "empty": nil, "wrong types": []byte(`{"items":"x"}`)} {
			t.Run(c.name+" "+name, func(t *testing.T) {
				t.Parallel()
				b := setupActivities(t, nil)
				in := newInstance(t, "o1", testInput())
				in.Input = input
				if c.change != nil {
					c.change(in)
				}
				_, err := b.act[c.step](context.Background(), in)
				require.Error(t, err)
				require.True(t, isPermanent(err), "want an engine.PermanentError, got %T: %v", err, err)
				require.Empty(t, b.rec.requests(), "nothing is sent")
			})
		}
	}
}
