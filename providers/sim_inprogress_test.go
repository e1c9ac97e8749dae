package providers

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// opCall calls op for order under the key <order>:<op>. ref is what the
// call refers to: the reservation of a release, the transaction of a
// refund ("" refunds by key). It returns the ID answered, ref for a
// release.
func opCall(ctx context.Context, set Set, op, order, ref string) (string, error) {
	key := IdempotencyKey(order, op)
	items := []Item{{SKU: "a", Qty: 1}}
	switch op {
	case OpReserve:
		return set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: key, OrderID: order, Items: items})
	case OpRelease:
		return ref, set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: key, OrderID: order, ReservationID: ref})
	case OpCharge:
		return set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: key, OrderID: order, CustomerID: "c", AmountCents: 100, Currency: "EUR"})
	case OpRefund:
		return set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: key, OrderID: order, TransactionID: ref, AmountCents: 100, Currency: "EUR"})
	case OpShip:
		return set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: key, OrderID: order, ReservationID: ref, Items: items})
	case OpAssess:
		a, err := set.Risk.Assess(ctx, AssessRequest{IdempotencyKey: key, OrderID: order, CustomerID: "c", AmountCents: 100, Currency: "EUR", Items: items})
		return a.Decision, err
	}
	panic("unknown op " + op)
}

// providerOf returns the provider of op.
func providerOf(op string) string {
	switch op {
	case OpReserve, OpRelease:
		return ProviderInventory
	case OpCharge, OpRefund:
		return ProviderPayment
	case OpAssess:
		return ProviderRisk
	}
	return ProviderShipping
}

// applied returns the ledger entries of op for order.
func (b *simBundle) applied(t *testing.T, op, order string) []LedgerEntry {
	t.Helper()
	entries, err := b.ledger.ForOrder(t.Context(), order)
	require.NoError(t, err)
	var out []LedgerEntry
	for _, e := range entries {
		if e.Op == op {
			out = append(out, e)
		}
	}
	return out
}

// waitHeld waits until a call holds key in progress.
func (b *simBundle) waitHeld(t *testing.T, op, key string) {
	t.Helper()
	marker := keysOf(providerOf(op)).inProgress(op, key)
	require.Eventually(t, func() bool {
		n, err := b.rdb.Exists(context.Background(), marker).Result()
		return err == nil && n == 1
	}, 10*time.Second, 2*time.Millisecond, "waiting for %s to be held", key)
}

// requireInProgress asserts err is a 409 in progress with Retry-After 1s.
func requireInProgress(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	requireProviderError(t, err, http.StatusConflict, CodeInProgress)
	require.True(t, IsInProgress(err), msgAndArgs...)
	require.True(t, IsAmbiguous(err), msgAndArgs...)
	require.False(t, IsPermanent(err), msgAndArgs...)
	require.Equal(t, time.Second, RetryAfterOf(err), msgAndArgs...)
}

// holdAll makes every call of every provider be held in progress for d.
func holdAll(d time.Duration) SimConfig {
	f := Faults{InProgressRate: 1, InProgressHold: d}
	return SimConfig{Inventory: f, Payment: f, Shipping: f, Risk: f}
}

// One simulator holds a key in progress; another on the same Redis answers
// 409 in progress meanwhile, and the first answer once the held call has
// applied its effect, for every operation.
func TestSimulatorInProgressAcrossSimulators(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		for _, o := range allOps {
			order := "o-" + o.op
			holder := setupSim(t, r, simOpts{cfg: holdAll(time.Hour)})
			other := setupSim(t, r, simOpts{})
			ctx := t.Context()
			ref := ""
			switch o.op {
			case OpRelease, OpShip:
				var err error
				ref, err = opCall(ctx, other.set, OpReserve, order, "")
				require.NoError(t, err)
			case OpRefund:
				_, err := opCall(ctx, other.set, OpCharge, order, "")
				require.NoError(t, err)
			}

			type result struct {
				id  string
				err error
			}
			held := make(chan result, 1)
			go func() {
				id, err := opCall(ctx, holder.set, o.op, order, ref)
				held <- result{id, err}
			}()
			holder.waitHeld(t, o.op, IdempotencyKey(order, o.op))

			for range 2 {
				_, err := opCall(ctx, other.set, o.op, order, ref)
				requireInProgress(t, err, o.op)
			}
			require.Empty(t, other.applied(t, o.op, order), "%s: nothing applied during the hold", o.op)

			holder.sim.Close()
			var first result
			select {
			case first = <-held:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: the held call did not end at Close", o.op)
			}
			require.NoError(t, first.err, o.op)
			require.Len(t, other.applied(t, o.op, order), 1, "%s: applied once, after the hold", o.op)

			again, err := opCall(ctx, other.set, o.op, order, ref)
			require.NoError(t, err, o.op)
			require.Equal(t, first.id, again, o.op)
			require.Len(t, other.applied(t, o.op, order), 1, o.op)
			n, err := other.rdb.Exists(ctx, keysOf(o.provider).inProgress(o.op, IdempotencyKey(order, o.op))).Result()
			require.NoError(t, err)
			require.Zero(t, n, "%s: the marker is gone", o.op)
		}
	})
}

// A held call applies its effect although its client gave up long before:
// the retry then reads the first answer.
func TestSimulatorInProgressAppliesAfterClientGaveUp(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: holdAll(time.Hour), timeout: 50 * time.Millisecond})
		ctx := t.Context()
		_, err := opCall(ctx, b.set, OpCharge, "o1", "")
		pe := requireProviderError(t, err, 0, "")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, pe.Ambiguous())

		// The client gave up; the provider still works on the key. (The
		// retries come from a patient client, so that a slow machine does
		// not time them out too.)
		patient := newTestClient(t, b.srv.URL, 0)
		b.waitHeld(t, OpCharge, "o1:charge")
		_, err = opCall(ctx, patient, OpCharge, "o1", "")
		requireInProgress(t, err)
		require.Empty(t, b.all(t, ProviderPayment))

		b.sim.Close()
		var entries []LedgerEntry
		require.Eventually(t, func() bool {
			entries = b.all(t, ProviderPayment)
			return len(entries) == 1
		}, 10*time.Second, 2*time.Millisecond)
		id, err := opCall(ctx, patient, OpCharge, "o1", "")
		require.NoError(t, err)
		require.Equal(t, entries[0].ID, id)
		require.Len(t, b.all(t, ProviderPayment), 1)
	})
}

// A short hold ends by itself: the client that waited long enough gets the
// answer, and only new keys are held.
func TestSimulatorInProgressHoldEnds(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: holdAll(20 * time.Millisecond)})
		ctx := t.Context()
		res, err := opCall(ctx, b.set, OpReserve, "o1", "")
		require.NoError(t, err)
		require.Len(t, b.all(t, ProviderInventory), 1)

		// A key with an answer is not new: it answers at once, and the
		// marker of the first hold is gone.
		again, err := opCall(ctx, b.set, OpReserve, "o1", "")
		require.NoError(t, err)
		require.Equal(t, res, again)
		n, err := b.rdb.Exists(ctx, inventoryKeys.inProgress(OpReserve, "o1:reserve")).Result()
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, b.all(t, ProviderInventory), 1)
	})
}

// A simulator that dies during a hold applied nothing; its marker expires,
// and the key is then new to every simulator.
func TestSimulatorInProgressMarkerExpires(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		ctx := t.Context()
		const hold = 30 * time.Millisecond
		// A dead simulator's hold: marked, never applied.
		g := simCall[*ChargeRequest]{provider: ProviderPayment, op: OpCharge, key: "o1:charge", faults: newFaultState(Faults{})}.guard()
		token, err := b.sim.claim(ctx, g, hold)
		require.NoError(t, err)
		require.NotEmpty(t, token)
		marker := keysOf(ProviderPayment).inProgress(OpCharge, "o1:charge")
		ttl, err := b.rdb.PTTL(ctx, marker).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, hold, "the marker outlives the hold")

		again, err := b.sim.claim(ctx, g, hold)
		require.NoError(t, err)
		require.Empty(t, again, "a held key is not claimed twice")
		_, err = opCall(ctx, b.set, OpCharge, "o1", "")
		requireInProgress(t, err)

		if r.Mini != nil {
			r.Mini.FastForward(markerTTL(hold))
		}
		require.Eventually(t, func() bool {
			n, err := b.rdb.Exists(ctx, marker).Result()
			return err == nil && n == 0
		}, 10*time.Second, 5*time.Millisecond)
		id, err := opCall(ctx, b.set, OpCharge, "o1", "")
		require.NoError(t, err)
		entries := b.all(t, ProviderPayment)
		require.Len(t, entries, 1)
		require.Equal(t, id, entries[0].ID)
	})
}

// A refund by key while its charge is held in progress answers 409 in
// progress and stores nothing: once the charge is applied, the refund
// refunds it.
func TestSimulatorRefundByKeyWaitsForHeldCharge(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		holder := setupSim(t, r, simOpts{cfg: holdAll(time.Hour)})
		other := setupSim(t, r, simOpts{})
		ctx := t.Context()
		charged := make(chan error, 1)
		go func() {
			_, err := opCall(ctx, holder.set, OpCharge, "o1", "")
			charged <- err
		}()
		holder.waitHeld(t, OpCharge, "o1:charge")
		_, err := opCall(ctx, other.set, OpRefund, "o1", "")
		requireInProgress(t, err)

		holder.sim.Close()
		require.NoError(t, <-charged)
		txn, err := opCall(ctx, other.set, OpCharge, "o1", "")
		require.NoError(t, err)
		ref, err := opCall(ctx, other.set, OpRefund, "o1", "")
		require.NoError(t, err)
		require.NotEmpty(t, ref)
		refunds := other.applied(t, OpRefund, "o1")
		require.Len(t, refunds, 1)
		require.Equal(t, txn, refunds[0].Ref)
	})
}
