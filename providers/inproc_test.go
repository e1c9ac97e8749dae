package providers

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInProcessIsIdempotent(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	set, ctx := p.Set(), t.Context()
	items := []Item{{SKU: "a", Qty: 1}}
	for range 3 {
		res, err := set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: items})
		require.NoError(t, err)
		txn, err := set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 1})
		require.NoError(t, err)
		ref, err := set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: txn})
		require.NoError(t, err)
		trk, err := set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1", ReservationID: res, Items: items})
		require.NoError(t, err)
		require.NoError(t, set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: res}))
		require.Equal(t, []string{"res_1", "txn_2", "ref_3", "trk_4"}, []string{res, txn, ref, trk})
	}
	require.NoError(t, set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o9:release", ReservationID: "res_unknown"}))
	for _, op := range []string{OpReserve, OpRelease, OpCharge, OpRefund, OpShip} {
		require.Equal(t, 1, p.Applied(op), op)
	}
	require.Equal(t, 3, p.Calls(OpCharge))
	require.Equal(t, 4, p.Calls(OpRelease))
	require.Zero(t, p.Applied("unknown"))
}

func TestInProcessDeclines(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	p.DeclineCustomers = map[string]bool{"c-bad": true}
	p.OutOfStockSKUs = map[string]bool{"gone": true}
	p.UndeliverableSKUs = map[string]bool{"fragile": true}
	p.UndeliverableCustomers = map[string]bool{"c-far": true}
	ctx := t.Context()
	for range 2 {
		_, err := p.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", CustomerID: "c-bad"})
		requireProviderError(t, err, http.StatusPaymentRequired, CodeCardDeclined)
		require.True(t, IsPermanent(err))
		_, err = p.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", Items: []Item{{SKU: "gone", Qty: 1}}})
		requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
		_, err = p.Ship(ctx, ShipRequest{IdempotencyKey: "o1:ship", Items: []Item{{SKU: "fragile", Qty: 1}}})
		requireProviderError(t, err, http.StatusUnprocessableEntity, CodeUndeliverable)
		_, err = p.Ship(ctx, ShipRequest{IdempotencyKey: "o2:ship", CustomerID: "c-far"})
		requireProviderError(t, err, http.StatusUnprocessableEntity, CodeUndeliverable)
	}
	for _, op := range []string{OpReserve, OpCharge, OpShip} {
		require.Zero(t, p.Applied(op), op)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := p.Charge(cancelled, ChargeRequest{IdempotencyKey: "o3:charge"})
	requireProviderError(t, err, 0, "")
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, IsAmbiguous(err))
	require.Zero(t, p.Calls(OpCharge)-2, "a cancelled call is not counted")
}

func TestInProcessConcurrentCalls(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	const workers, orders = 8, 50
	ids := make([][orders]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for o := range orders {
				order := "o" + strconv.Itoa(o)
				res, err := p.Reserve(t.Context(), ReserveRequest{IdempotencyKey: IdempotencyKey(order, OpReserve), OrderID: order})
				if err != nil {
					t.Error(err)
					return
				}
				if err := p.Release(t.Context(), ReleaseRequest{IdempotencyKey: IdempotencyKey(order, OpRelease), ReservationID: res}); err != nil {
					t.Error(err)
					return
				}
				ids[w][o], err = p.Charge(t.Context(), ChargeRequest{IdempotencyKey: IdempotencyKey(order, OpCharge), OrderID: order})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for w := range workers {
		require.Equal(t, ids[0], ids[w])
	}
	require.Equal(t, orders, p.Applied(OpReserve))
	require.Equal(t, orders, p.Applied(OpRelease))
	require.Equal(t, orders, p.Applied(OpCharge))
	require.Equal(t, workers*orders, p.Calls(OpCharge))
}

func BenchmarkInProcessCharge(b *testing.B) {
	b.Run("new key", func(b *testing.B) {
		p := NewInProcess()
		keys := make([]string, 1<<16)
		for i := range keys {
			keys[i] = "o" + strconv.Itoa(i) + ":charge"
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(keys) {
				p, i = NewInProcess(), 0
			}
			if _, err := p.Charge(context.Background(), ChargeRequest{IdempotencyKey: keys[i], OrderID: "o", AmountCents: 100}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("repeated key parallel", func(b *testing.B) {
		p := NewInProcess()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Charge(context.Background(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 100}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// A refund by key refunds the charge made under the matching charge key;
// a transaction is refunded at most once, and an unknown one not at all.
func TestInProcessRefunds(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	p.DeclineCustomers = map[string]bool{"c-bad": true}
	ctx := t.Context()
	charge := func(key, customer string) string {
		id, err := p.Charge(ctx, ChargeRequest{IdempotencyKey: key, OrderID: "o", CustomerID: customer, AmountCents: 100})
		if customer != "c-bad" {
			require.NoError(t, err)
		}
		return id
	}
	refund := func(key, txn string) string {
		id, err := p.Refund(ctx, RefundRequest{IdempotencyKey: key, OrderID: "o", TransactionID: txn, AmountCents: 100})
		require.NoError(t, err)
		return id
	}

	// By key, after a charge: refunded once, whatever the key asks again.
	txn := charge("o1:charge", "c1")
	ref := refund("o1:refund", "")
	require.NotEmpty(t, ref)
	require.Equal(t, ref, refund("o1:refund", ""))
	require.Equal(t, ref, refund("o1:refund:again", txn), "a refunded transaction answers its refund")
	require.Equal(t, 1, p.Applied(OpRefund))

	// By key, with no charge: nothing, and that stays the key's answer.
	require.Empty(t, refund("o2:refund", ""))
	charge("o2:charge", "c1")
	require.Empty(t, refund("o2:refund", ""))
	require.Equal(t, 1, p.Applied(OpRefund))

	// By key, after a declined charge: nothing.
	charge("o3:charge", "c-bad")
	require.Empty(t, refund("o3:refund", ""))

	// A later incarnation's refund finds its own charge only.
	charge("o4:charge", "c1")
	require.Empty(t, refund("o4~2:refund", ""))
	txn4 := charge("o4~3:charge", "c1")
	ref4 := refund("o4~3:refund", "")
	require.NotEmpty(t, ref4)
	require.Equal(t, ref4, refund("o4:refund:x", txn4))
	require.Equal(t, 2, p.Applied(OpRefund))

	// An unknown transaction is not refunded.
	require.Empty(t, refund("o5:refund", "txn_999"))
	require.Equal(t, 2, p.Applied(OpRefund))

	// A refund by key needs a refund key.
	_, err := p.Refund(ctx, RefundRequest{IdempotencyKey: "o6:charge", OrderID: "o6"})
	requireProviderError(t, err, http.StatusBadRequest, CodeBadRequest)
	require.True(t, IsUnexpected(err))
	_, err = p.Refund(ctx, RefundRequest{IdempotencyKey: ":refund", OrderID: "o6"})
	requireProviderError(t, err, http.StatusBadRequest, CodeBadRequest)
}

// With KeyRetention a key's first answer is kept for at least the
// retention, and forgotten after two: the fake's memory stays bounded.
func TestInProcessForgetsKeysAfterTheirRetention(t *testing.T) {
	t.Parallel()
	p := NewInProcess()
	p.KeyRetention = 50 * time.Millisecond
	set, ctx := p.Set(), t.Context()
	charge := func(key string) string {
		txn, err := set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: key, OrderID: "o", AmountCents: 1})
		require.NoError(t, err)
		return txn
	}
	first := charge("o1:charge")
	require.Equal(t, first, charge("o1:charge"), "kept within the retention")
	var again string
	require.Eventually(t, func() bool {
		charge("other:charge") // calls are what rotate the generations
		again = charge("o1:charge")
		return again != first
	}, 5*time.Second, 10*time.Millisecond, "forgotten after two retentions")
	require.Equal(t, again, charge("o1:charge"), "the new answer is kept in turn")
}
