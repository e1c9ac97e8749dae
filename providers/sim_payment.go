package providers

import (
	"context"
	"net/http"
)

func (r *ChargeRequest) check() string {
	switch {
	case r.OrderID == "":
		return "order_id is required"
	case r.AmountCents < 0:
		return "amount_cents must not be negative"
	}
	return ""
}

func (r *RefundRequest) check() string {
	switch {
	case r.OrderID == "":
		return "order_id is required"
	case r.TransactionID == "":
		return "transaction_id is required"
	case r.AmountCents < 0:
		return "amount_cents must not be negative"
	}
	return ""
}

// charge serves POST /payment/charges.
func (s *Simulator) charge(ctx context.Context, c simCall[*ChargeRequest]) (answer, error) {
	e := c.entry(ProviderPayment, OpCharge, c.req.OrderID)
	if c.faults.customers[c.req.CustomerID] {
		return s.record(ctx, e, declined(http.StatusPaymentRequired, CodeCardDeclined))
	}
	e.ID = simID("txn_", ProviderPayment, OpCharge, c.key)
	e.AmountCents, e.Currency = c.req.AmountCents, c.req.Currency
	return s.record(ctx, e, answer{status: http.StatusOK, body: idBody("transaction_id", e.ID)})
}

// refund serves POST /payment/refunds.
func (s *Simulator) refund(ctx context.Context, c simCall[*RefundRequest]) (answer, error) {
	e := c.entry(ProviderPayment, OpRefund, c.req.OrderID)
	e.ID = simID("ref_", ProviderPayment, OpRefund, c.key)
	e.Ref = c.req.TransactionID
	e.AmountCents, e.Currency = c.req.AmountCents, c.req.Currency
	return s.record(ctx, e, answer{status: http.StatusOK, body: idBody("refund_id", e.ID)})
}
