package providers

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// A refund with no transaction ID refunds the charge answered 200 under its
// charge key, and nothing else.
func TestSimulatorRefundByKey(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Payment: Faults{DeclineCustomers: []string{"c-bad"}}}})
		ctx := t.Context()
		refund := func(key, order, txn string, cents int64) string {
			t.Helper()
			id, err := b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: key, OrderID: order, TransactionID: txn, AmountCents: cents, Currency: "EUR"})
			require.NoError(t, err, key)
			return id
		}

		// After a charge: that transaction, for the amount asked.
		txn, err := b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 1000, Currency: "EUR"})
		require.NoError(t, err)
		ref := refund("o1:refund", "o1", "", 400)
		require.NotEmpty(t, ref)
		require.Equal(t, ref, refund("o1:refund", "o1", "", 400), "the key answers its first answer")
		require.Equal(t, ref, refund("o1:refund:2", "o1", txn, 400), "a transaction is refunded once")
		refunds := b.applied(t, OpRefund, "o1")
		require.Len(t, refunds, 1)
		require.Equal(t, LedgerEntry{
			Provider: ProviderPayment, Op: OpRefund, Key: "o1:refund", OrderID: "o1",
			ID: ref, Ref: txn, AmountCents: 400, Currency: "EUR", At: refunds[0].At,
		}, refunds[0])

		// With no charge: nothing, and that stays the key's first answer.
		status, body := b.do(t, http.MethodPost, "/payment/refunds", "o2:refund", `{"order_id":"o2","transaction_id":"","amount_cents":5}`)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"refund_id":"","refunded":false}`, body)
		require.Empty(t, refund("o2:refund", "o2", "", 5))
		_, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o2:charge", OrderID: "o2", AmountCents: 5})
		require.NoError(t, err)
		require.Empty(t, refund("o2:refund", "o2", "", 5))
		require.Empty(t, b.applied(t, OpRefund, "o2"))

		// After a declined charge: nothing.
		_, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o3:charge", OrderID: "o3", CustomerID: "c-bad", AmountCents: 5})
		require.True(t, IsDecline(err))
		require.Empty(t, refund("o3:refund", "o3", "", 5))
		require.Empty(t, b.applied(t, OpRefund, "o3"))

		// A later incarnation's refund key finds its own charge only.
		_, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o4:charge", OrderID: "o4", AmountCents: 7})
		require.NoError(t, err)
		require.Empty(t, refund("o4~2:refund", "o4", "", 7))
		txn4, err := b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o4~3:charge", OrderID: "o4", AmountCents: 7})
		require.NoError(t, err)
		require.NotEmpty(t, refund("o4~3:refund", "o4", "", 7))
		refunds = b.applied(t, OpRefund, "o4")
		require.Len(t, refunds, 1)
		require.Equal(t, txn4, refunds[0].Ref)

		// A refund by key needs a refund key: anything else is a 400, which
		// the client takes for unexpected.
		status, body = b.do(t, http.MethodPost, "/payment/refunds", "o5:charge", `{"order_id":"o5","transaction_id":""}`)
		require.Equal(t, http.StatusBadRequest, status)
		require.Contains(t, body, `"error":"bad_request"`)
		_, err = b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: ":refund", OrderID: "o5"})
		requireProviderError(t, err, http.StatusBadRequest, CodeBadRequest)
		require.True(t, IsUnexpected(err))
	})
}

// Compensations of what the provider never did apply nothing: a refund of
// an unknown transaction, a release of an unknown reservation.
func TestSimulatorUnknownCompensations(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 5}})
		ctx := t.Context()
		_, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o0:reserve", OrderID: "o0", Items: []Item{{SKU: "a", Qty: 2}}})
		require.NoError(t, err)
		for range 2 {
			id, err := b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: "txn_never", AmountCents: 5})
			require.NoError(t, err)
			require.Empty(t, id)
			require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: "res_never"}))
		}
		status, body := b.do(t, http.MethodPost, "/payment/refunds", "o2:refund", `{"order_id":"o2","transaction_id":"txn_never"}`)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"refund_id":"","refunded":false}`, body)
		status, body = b.do(t, http.MethodPost, "/inventory/reservations/res_never/release", "o2:release", `{"order_id":"o2"}`)
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"released":true}`, body)
		require.Empty(t, b.all(t, ProviderPayment))
		require.Len(t, b.all(t, ProviderInventory), 1, "the reservation only")
		available, _, err := b.ledger.Stock(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, 3, available)
	})
}
