package providers

import (
	"context"
	"net/http"
)

// nothingRefundedBody is the answer to a refund that found nothing to
// refund.
const nothingRefundedBody = `{"refund_id":"","refunded":false}`

func (r *ChargeRequest) check(string) string {
	switch {
	case r.OrderID == "":
		return "order_id is required"
	case r.AmountCents < 0:
		return "amount_cents must not be negative"
	}
	return ""
}

func (r *RefundRequest) check(key string) string {
	switch {
	case r.OrderID == "":
		return "order_id is required"
	case r.AmountCents < 0:
		return "amount_cents must not be negative"
	}
	if _, ok := chargeKeyOf(key); r.TransactionID == "" && !ok {
		return "a refund without transaction_id refunds by key: its Idempotency-Key must end in :refund"
	}
	return ""
}

// charge serves POST /payment/charges. A charge applied records its
// transaction, for refunds to find.
func (s *Simulator) charge(ctx context.Context, c simCall[*ChargeRequest]) (answer, error) {
	e := c.entry(c.req.OrderID)
	e.ID = simID("txn_", ProviderPayment, OpCharge, c.key)
	e.AmountCents, e.Currency = c.req.AmountCents, c.req.Currency
	txn := keysOf(ProviderPayment).transaction(e.ID)
	if c.faults.customers[c.req.CustomerID] {
		var applied *LedgerEntry
		if c.faults.applyDeclines {
			applied = &e
		}
		return s.record(ctx, c.guard(), applied, declined(http.StatusPaymentRequired, CodeCardDeclined), txn, "order_id", c.req.OrderID)
	}
	return s.record(ctx, c.guard(), &e, answer{status: http.StatusOK, body: idBody("transaction_id", e.ID)}, txn, "order_id", c.req.OrderID)
}

// refund serves POST /payment/refunds (scripts/refund.lua). Without a
// transaction ID it refunds the charge made under the charge key, whose
// transaction ID the key gives (simID), so the script declares every key it
// touches.
func (s *Simulator) refund(ctx context.Context, c simCall[*RefundRequest]) (answer, error) {
	txn, chargeKey := c.req.TransactionID, ""
	byKey := txn == ""
	if byKey {
		chargeKey, _ = chargeKeyOf(c.key) // check made sure it has one
		txn = simID("txn_", ProviderPayment, OpCharge, chargeKey)
	}
	e := c.entry(c.req.OrderID)
	e.ID = simID("ref_", ProviderPayment, OpRefund, c.key)
	e.Ref = txn
	e.AmountCents, e.Currency = c.req.AmountCents, c.req.Currency
	entry, err := e.marshal()
	if err != nil {
		return answer{}, err
	}
	k := keysOf(ProviderPayment)
	keys := []string{
		k.ledger(), k.orderLedger(c.req.OrderID), k.transaction(txn),
		k.answer(OpCharge, chargeKey), k.inProgress(OpCharge, chargeKey),
	}
	args := []any{
		e.ID, entry, flag(byKey), flag(c.faults.dropCompensations),
		nothingRefundedBody, idBody("refund_id", e.ID),
	}
	return s.runAnswer(ctx, refundScript, c.guard(), keys, args...)
}
