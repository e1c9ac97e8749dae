package orders

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// Activities returns the order workflow's steps, of every version, carried
// out against p. Every call carries the idempotency key
// <order_id>:<operation>, stable across attempts, processes and workflow
// versions.
func Activities(p providers.Set) engine.Activities { return ActivitiesWith(p, Options{}) }

// Options tune the activities. Every field's comment gives its default.
type Options struct {
	// ShipmentPoll is how often a followed shipment is polled. Default
	// DefaultShipmentPoll (500ms).
	ShipmentPoll time.Duration
}

// ActivitiesWith is Activities with options.
func ActivitiesWith(p providers.Set, o Options) engine.Activities {
	a := &activities{p: p, shipmentPoll: cmp.Or(o.ShipmentPoll, DefaultShipmentPoll)}
	return engine.Activities{
		statemachine.StepReserve:      a.reserve,
		statemachine.StepCharge:       a.charge,
		statemachine.StepShip:         a.ship,
		statemachine.StepRefund:       a.refund,
		statemachine.StepRelease:      a.release,
		statemachine.StepAssess:       a.assess,
		statemachine.StepReserveAt:    a.reserveAt,
		statemachine.StepReleaseExtra: a.releaseExtra,
		statemachine.StepShipTracked:  a.shipTracked,
		statemachine.StepReleaseAll:   a.releaseAll,
	}
}

type activities struct {
	p            providers.Set
	shipmentPoll time.Duration
}

// input decodes the order's input once per run: the steps of one advance
// share the decoded value.
func input(in *statemachine.Instance) (Input, error) {
	if i, ok := in.Decoded.(Input); ok {
		return i, nil
	}
	var i Input
	if err := json.Unmarshal(in.Input, &i); err != nil {
		return i, engine.Permanent(fmt.Errorf("decoding order input: %w", err))
	}
	in.Decoded = i
	return i, nil
}

func providerItems(items []Item) []providers.Item {
	out := make([]providers.Item, len(items))
	for i, it := range items {
		out[i] = providers.Item{SKU: it.SKU, Qty: int(it.Qty)}
	}
	return out
}

func (a *activities) reserve(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := input(in)
	if err != nil {
		return nil, err
	}
	id, err := a.p.Inventory.Reserve(ctx, providers.ReserveRequest{
		IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpReserve),
		OrderID:        in.ID, Items: providerItems(i.Items),
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{ResultReservationID: id}, nil
}

func (a *activities) charge(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := input(in)
	if err != nil {
		return nil, err
	}
	id, err := a.p.Payment.Charge(ctx, chargeRequest(in, i))
	if err != nil {
		return nil, err
	}
	return map[string]string{ResultTransactionID: id}, nil
}

func chargeRequest(in *statemachine.Instance, i Input) providers.ChargeRequest {
	return providers.ChargeRequest{
		IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpCharge),
		OrderID:        in.ID, CustomerID: i.CustomerID, AmountCents: i.AmountCents, Currency: i.Currency,
	}
}

func (a *activities) ship(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := input(in)
	if err != nil {
		return nil, err
	}
	n, err := a.p.Shipping.Ship(ctx, providers.ShipRequest{
		IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpShip),
		OrderID:        in.ID, CustomerID: i.CustomerID,
		ReservationID: in.Results[ResultReservationID], Items: providerItems(i.Items),
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{ResultTrackingNumber: n}, nil
}

// refund undoes the charge, driven by keys rather than by what the record
// remembers:
//   - the transaction is known: refund it;
//   - the charge was declined: nothing was charged;
//   - the charge was attempted without a definite answer (in doubt): settle
//     it first by repeating the charge under its own key (the provider
//     answers with the first result, or, if the charge never arrived,
//     applies it now), then refund it. Only a success or a decline settles
//     it; any other answer is retried;
//   - the record shows no attempt: refund by key anyway, with no
//     transaction ID. The provider refunds a charge made under the
//     order's charge key if there is one (a write lost by Redis can hide an
//     attempt) and otherwise refunds nothing.
func (a *activities) refund(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := input(in)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	txn := in.Results[ResultTransactionID]
	switch {
	case txn != "":
	case in.Declined[statemachine.StepCharge]:
		return out, nil // the charge was declined: nothing to refund
	case in.InDoubt(statemachine.StepCharge, ResultTransactionID):
		txn, err = a.p.Payment.Charge(ctx, chargeRequest(in, i))
		if providers.IsPermanent(err) {
			return out, nil // the charge was declined: nothing to refund
		}
		if err != nil {
			return nil, fmt.Errorf("settling the charge before refunding: %w", err)
		}
		out[ResultTransactionID] = txn
	}
	id, err := a.p.Payment.Refund(ctx, providers.RefundRequest{
		IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpRefund),
		OrderID:        in.ID, TransactionID: txn, AmountCents: i.AmountCents, Currency: i.Currency,
	})
	if err != nil {
		return nil, err
	}
	if id != "" {
		out[ResultRefundID] = id
	}
	return out, nil
}

// release gives the stock back, settling an unknown reservation first the
// same way refund settles a charge. Like every compensation it is driven by
// what the order may hold, not by the version it runs now: an order that
// reserved per warehouse (version 2, or migrated from it to version 1)
// releases every warehouse's reservation, and one that reserved without a
// warehouse (version 1, or migrated from it) its single reservation.
func (a *activities) release(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	if len(in.Branches) > 0 {
		if err := a.releaseAt(ctx, in, ""); err != nil {
			return nil, err
		}
	}
	return a.releaseSingle(ctx, in)
}

// releaseSingle releases the reservation made without a warehouse (key
// <order_id>:reserve), if the order may hold one.
func (a *activities) releaseSingle(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	out := map[string]string{}
	res := in.Results[ResultReservationID]
	for _, wh := range in.Branches {
		if res != "" && res == in.Results[statemachine.BranchKey(ResultReservationID, wh)] {
			return out, nil // a warehouse's reservation (the fan-in's winner), released above
		}
	}
	if res == "" {
		if !in.InDoubt(statemachine.StepReserve, ResultReservationID) {
			return out, nil // nothing was reserved
		}
		i, err := input(in)
		if err != nil {
			return nil, err
		}
		res, err = a.p.Inventory.Reserve(ctx, providers.ReserveRequest{
			IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpReserve),
			OrderID:        in.ID, Items: providerItems(i.Items),
		})
		if providers.IsPermanent(err) {
			return out, nil // out of stock: nothing was reserved
		}
		// Only a success or a decline settles the reservation; any other
		// answer (a 401, a gateway 404, a timeout) is retried.
		if err != nil {
			return nil, fmt.Errorf("settling the reservation before releasing: %w", err)
		}
		out[ResultReservationID] = res
	}
	err := a.p.Inventory.Release(ctx, providers.ReleaseRequest{
		IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpRelease),
		OrderID:        in.ID, ReservationID: res,
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
