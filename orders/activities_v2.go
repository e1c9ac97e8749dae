package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The steps of version 2 of the order workflow: the risk agent, the
// reservations at every warehouse, the release of the ones that lost, the
// shipment followed to delivery, and the release at every warehouse that
// compensates.

// The results version 2 records, beside version 1's.
const (
	ResultDecision       = statemachine.ResultDecision
	ResultDecisionReason = statemachine.ResultDecisionReason
	ResultWarehouse      = statemachine.ResultWarehouse
	ResultShipmentID     = statemachine.ResultShipmentID
)

// DefaultShipmentPoll is how often a followed shipment is polled.
const DefaultShipmentPoll = 500 * time.Millisecond

// decode decodes the order's input without caching it: the branches of a
// fan-out run at once on one instance.
func decode(in *statemachine.Instance) (Input, error) {
	var i Input
	if err := json.Unmarshal(in.Input, &i); err != nil {
		return i, engine.Permanent(fmt.Errorf("decoding order input: %w", err))
	}
	return i, nil
}

// assess asks the risk agent. Its decision picks the next state (see
// statemachine.OrderV2); an assessment changes nothing outside.
func (a *activities) assess(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := input(in)
	if err != nil {
		return nil, err
	}
	res, err := a.p.Risk.Assess(ctx, providers.AssessRequest{
		IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpAssess),
		OrderID:        in.ID, CustomerID: i.CustomerID, AmountCents: i.AmountCents, Currency: i.Currency, Items: providerItems(i.Items),
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{ResultDecision: res.Decision, ResultDecisionReason: res.Reason}, nil
}

// reserveAt reserves the order's stock at the warehouse of its fan-out
// branch (key <order_id>:reserve:<warehouse>).
func (a *activities) reserveAt(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := decode(in)
	if err != nil {
		return nil, err
	}
	wh := engine.Branch(ctx)
	id, err := a.p.Inventory.Reserve(ctx, providers.ReserveRequest{
		IdempotencyKey: providers.IdempotencyKeyFor(in.KeyPrefix(), providers.OpReserve, wh),
		OrderID:        in.ID, Items: providerItems(i.Items), Warehouse: wh,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{ResultReservationID: id}, nil
}

// releaseExtra releases the reservation of every warehouse but the
// winner's, settling those in doubt first.
func (a *activities) releaseExtra(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	return nil, a.releaseAt(ctx, in, in.Results[ResultWarehouse])
}

// releaseAll compensates the reservations: it releases the stock at every
// warehouse that may hold some, settling those in doubt first. An order
// that came from version 1 holds at most one reservation, made without a
// warehouse. It is version 1's release, which handles both.
func (a *activities) releaseAll(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	return a.release(ctx, in)
}

// releaseAt releases the reservations of every branch but keep's. A
// branch whose reservation may exist without its ID on record (attempted,
// neither succeeded nor declined) is settled first by repeating the
// reservation under its key; only a success or a decline settles it.
func (a *activities) releaseAt(ctx context.Context, in *statemachine.Instance, keep string) error {
	for _, wh := range in.Branches {
		if wh == keep {
			continue
		}
		step := statemachine.BranchKey(statemachine.StepReserveAt, wh)
		res := in.Results[statemachine.BranchKey(ResultReservationID, wh)]
		if res == "" {
			if in.Attempts[step] == 0 || in.Declined[step] {
				continue // never reserved there
			}
			i, err := decode(in)
			if err != nil {
				return err
			}
			res, err = a.p.Inventory.Reserve(ctx, providers.ReserveRequest{
				IdempotencyKey: providers.IdempotencyKeyFor(in.KeyPrefix(), providers.OpReserve, wh),
				OrderID:        in.ID, Items: providerItems(i.Items), Warehouse: wh,
			})
			if providers.IsPermanent(err) {
				continue // out of stock there: nothing was reserved
			}
			if err != nil {
				return fmt.Errorf("settling the reservation at %s before releasing: %w", wh, err)
			}
		}
		if err := a.p.Inventory.Release(ctx, providers.ReleaseRequest{
			IdempotencyKey: providers.IdempotencyKeyFor(in.KeyPrefix(), providers.OpRelease, wh),
			OrderID:        in.ID, ReservationID: res,
		}); err != nil {
			return fmt.Errorf("releasing at %s: %w", wh, err)
		}
	}
	return nil
}

// shipTracked ships the reserved stock as a long-running shipment and
// follows it until it is delivered, reporting its progress in heartbeats.
// The shipment's ID is kept as a checkpoint, so an attempt that takes over
// follows the same shipment and never starts a second one (the key would
// find the first anyway).
func (a *activities) shipTracked(ctx context.Context, in *statemachine.Instance) (map[string]string, error) {
	i, err := decode(in)
	if err != nil {
		return nil, err
	}
	id := in.Results[ResultShipmentID]
	if id == "" {
		s, err := a.p.Shipping.ShipAsync(ctx, providers.ShipRequest{
			IdempotencyKey: providers.IdempotencyKey(in.KeyPrefix(), providers.OpShip),
			OrderID:        in.ID, CustomerID: i.CustomerID,
			ReservationID: in.Results[ResultReservationID], Items: providerItems(i.Items),
		})
		if err != nil {
			return nil, err
		}
		if s.ID == "" {
			return shipped(s) // the provider shipped at once
		}
		id = s.ID
		if err := engine.Heartbeat(ctx, engine.Progress{Percent: s.Progress, Detail: s.Status,
			Checkpoint: map[string]string{ResultShipmentID: id}}); err != nil {
			return nil, err
		}
	}
	poll := time.NewTicker(a.shipmentPoll)
	defer poll.Stop()
	for {
		s, err := a.p.Shipping.GetShipment(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := engine.Heartbeat(ctx, engine.Progress{Percent: s.Progress, Detail: s.Status}); err != nil {
			return nil, err
		}
		if s.Done() {
			return shipped(s)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-poll.C:
		}
	}
}

// shipped turns a finished shipment into the step's outcome: delivered
// succeeds; undeliverable is the shipping decline (nothing left the
// warehouse); any other end is no decline (a shipment cannot be recalled),
// so it is retried, and in the end dead-lettered for an operator.
func shipped(s providers.Shipment) (map[string]string, error) {
	switch {
	case s.Status == providers.ShipmentDelivered:
		return map[string]string{ResultTrackingNumber: s.TrackingNumber}, nil
	case s.Undeliverable():
		return nil, &providers.Error{Provider: providers.ProviderShipping, Op: providers.OpShip,
			Status: http.StatusUnprocessableEntity, Code: providers.CodeUndeliverable}
	}
	return nil, fmt.Errorf("shipment %s ended %s (%s): not a decline, retried", s.ID, s.Status, s.Error)
}
