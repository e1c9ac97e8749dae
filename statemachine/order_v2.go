package statemachine

import (
	"cmp"
	"slices"
	"time"

	"github.com/looplab/fsm"
)

// The steps of the order workflow's version 2 that version 1 lacks, or runs
// differently.
const (
	StepAssess       = "assess"        // the risk agent decides
	StepReserveAt    = "reserve_at"    // one reservation per warehouse (a fan-out)
	StepReleaseExtra = "release_extra" // release every reservation but the winner's
	StepShipTracked  = "ship_tracked"  // a long-running shipment, followed to delivery
	StepReleaseAll   = "release_all"   // compensation: release at every warehouse
)

// The states of the order workflow's version 2 that version 1 lacks.
const (
	OrderAssessing       = "assessing"
	OrderInReview        = "in_review"
	OrderReleasingExtra  = "releasing_extra"
	OrderReleasingAll    = "releasing"
	ResourceRisk         = "risk"
	DefaultWarehouse     = "main"
	DefaultReviewTimeout = 24 * time.Hour
	ResultDecision       = "risk_decision"
	ResultDecisionReason = "risk_reason"
	ResultWarehouse      = "warehouse"
	ResultReservationID  = "reservation_id"
	ResultShipmentID     = "shipment_id"
	SignalApprove        = "approve"
	SignalReject         = "reject"
)

// The risk agent's decisions (PROVIDERS.md), as the assess step records
// them.
const (
	decisionApprove = "approve"
	decisionReview  = "review"
	decisionReject  = "reject"
)

// shipmentHeartbeat is how often a followed shipment must report progress
// before its worker is taken to be gone.
const shipmentHeartbeat = 10 * time.Second

// OrderV2Options configure version 2 of the order workflow.
type OrderV2Options struct {
	// Warehouses are where stock is reserved, all at once. Default
	// DefaultWarehouse alone.
	Warehouses []string
	// ReviewTimeout is how long an order waits for a human's review before
	// it is cancelled. Default DefaultReviewTimeout (24h).
	ReviewTimeout time.Duration
}

// OrderV2 returns version 2 of the order workflow: a risk agent decides
// (approve, reject, or a human review with a deadline), stock is reserved
// at every warehouse at once (the first success wins; the others are
// released), the customer is charged, and the shipment is followed until it
// is delivered, reporting progress.
func OrderV2(o OrderV2Options) *Definition {
	warehouses := slices.Clone(o.Warehouses)
	if len(warehouses) == 0 {
		warehouses = []string{DefaultWarehouse}
	}
	review := cmp.Or(o.ReviewTimeout, DefaultReviewTimeout)
	cancel := map[string]string{SignalCancel: "cancel"}
	return &Definition{
		Name:    OrderWorkflow,
		Version: 2,
		Initial: OrderPending,
		Queue:   DefaultQueue,
		States: []State{
			{Name: OrderPending, Status: StatusRunning, OnSuccess: "start", OnSignal: cancel,
				Doc: "Accepted and durably queued; no step has started. A cancel here ends the order at once."},
			{Name: OrderAssessing, Status: StatusRunning, Step: StepAssess, Retry: forwardRetry, Resource: ResourceRisk,
				Outcome: ResultDecision, OnOutcome: map[string]string{decisionApprove: "approved", decisionReview: "review", decisionReject: "rejected"},
				OnFailure: "assess_failed", OnSignal: cancel,
				Doc: "The risk agent assesses the order (key <order_id>:assess): approve goes on, review waits for a human, reject ends the order failed with nothing to undo. An assessment changes nothing outside, so a cancel ends the order at once."},
			{Name: OrderInReview, Status: StatusRunning, Timeout: review, OnTimeout: "review_timed_out",
				OnSignal: map[string]string{SignalApprove: "review_approved", SignalReject: "review_rejected", SignalCancel: "cancel"},
				Doc:      "Waits for a human's approve or reject signal, or for the review deadline (--review-timeout, kept in the record as review.deadline), after which the order is cancelled. Nothing was done yet, so nothing is undone."},
			{Name: OrderReserving, Status: StatusRunning, Step: StepReserveAt, Retry: forwardRetry, Queue: QueueInventory, Resource: ResourceInventory,
				Branches: warehouses, Join: joinReservations, OnSignal: cancel,
				Doc: "Reserves the stock at every warehouse at once (keys <order_id>:reserve:<warehouse>). The fan-in is decided once, when every warehouse has answered: the first success wins and every other success is released; all out of stock ends the order failed; none reserved but some in doubt compensates. A cancel releases everything reserved."},
			{Name: OrderReleasingExtra, Status: StatusRunning, Step: StepReleaseExtra, Retry: compensationRetry, Compensation: true,
				Requires: []string{ResultWarehouse},
				Queue:    QueueInventory, Resource: ResourceInventory, OnSuccess: "extra_released", OnSignal: cancel,
				Doc: "Releases the reservations of every warehouse but the winner's (keys <order_id>:release:<warehouse>), settling those in doubt first. Never gives up: after 50 attempts it is dead-lettered."},
			{Name: OrderCharging, Status: StatusRunning, Step: StepCharge, Retry: forwardRetry, Queue: QueuePayments, Resource: ResourcePayment,
				Requires:  []string{ResultReservationID},
				OnSuccess: "charged", OnFailure: "charge_failed", OnExhausted: "charge_unsettled", OnSignal: cancel,
				Doc: "Charging the customer (key <order_id>:charge), as in version 1."},
			{Name: OrderShipping, Status: StatusRunning, Step: StepShipTracked, Retry: irreversibleRetry, Irreversible: true,
				Requires: []string{ResultReservationID, "transaction_id"},
				Queue:    QueueShipping, Resource: ResourceShipping, Heartbeat: shipmentHeartbeat,
				OnSuccess: "shipped", OnFailure: "ship_failed",
				Doc: "Ships the reserved stock (key <order_id>:ship) and follows the shipment until it is delivered: each poll reports its progress in a heartbeat and keeps the shipment ID as a checkpoint, so a worker that takes over goes on with the same shipment and never starts a second. The point of no return: cancel is refused; only an undeliverable answer (nothing left the warehouse) refunds and releases."},
			{Name: OrderCompleted, Status: StatusCompleted,
				Doc: "Assessed, reserved, charged and delivered. Terminal."},
			{Name: OrderRefunding, Status: StatusRunning, Step: StepRefund, Retry: compensationRetry, Compensation: true,
				Queue: QueuePayments, Resource: ResourcePayment, OnSuccess: "refunded",
				Doc: "Compensation: refunding the charge by key, as in version 1. Never gives up: after 50 attempts it is dead-lettered."},
			{Name: OrderReleasingAll, Status: StatusRunning, Step: StepReleaseAll, Retry: compensationRetry, Compensation: true,
				Queue: QueueInventory, Resource: ResourceInventory, OnSuccess: "released", OnSuccessCancelled: "release_cancelled",
				Doc: "Compensation: releasing the stock at every warehouse that may hold a reservation (keys <order_id>:release:<warehouse>), settling those in doubt first. Ends failed, or cancelled when a cancel started it. Never gives up: after 50 attempts it is dead-lettered."},
			{Name: OrderFailed, Status: StatusFailed,
				Doc: "Rejected, out of stock everywhere, or a step failed for good and everything done before it was undone. Terminal."},
			{Name: OrderCancelled, Status: StatusCancelled,
				Doc: "Cancelled on request, or not reviewed in time, and everything done before was undone. Terminal."},
		},
		Events: fsm.Events{
			{Name: "start", Src: []string{OrderPending}, Dst: OrderAssessing},
			{Name: "approved", Src: []string{OrderAssessing}, Dst: OrderReserving},
			{Name: "review", Src: []string{OrderAssessing}, Dst: OrderInReview},
			{Name: "rejected", Src: []string{OrderAssessing}, Dst: OrderFailed},
			{Name: "assess_failed", Src: []string{OrderAssessing}, Dst: OrderFailed},
			{Name: "review_approved", Src: []string{OrderInReview}, Dst: OrderReserving},
			{Name: "review_rejected", Src: []string{OrderInReview}, Dst: OrderFailed},
			{Name: "review_timed_out", Src: []string{OrderInReview}, Dst: OrderCancelled},

			{Name: "reserved", Src: []string{OrderReserving}, Dst: OrderCharging},
			{Name: "reserved_extra", Src: []string{OrderReserving}, Dst: OrderReleasingExtra},
			{Name: "out_of_stock", Src: []string{OrderReserving}, Dst: OrderFailed},
			{Name: "reserve_unsettled", Src: []string{OrderReserving}, Dst: OrderRefunding},
			{Name: "extra_released", Src: []string{OrderReleasingExtra}, Dst: OrderCharging},

			{Name: "charged", Src: []string{OrderCharging}, Dst: OrderShipping},
			{Name: "charge_failed", Src: []string{OrderCharging}, Dst: OrderReleasingAll},
			{Name: "charge_unsettled", Src: []string{OrderCharging}, Dst: OrderRefunding},
			{Name: "shipped", Src: []string{OrderShipping}, Dst: OrderCompleted},
			{Name: "ship_failed", Src: []string{OrderShipping}, Dst: OrderRefunding},

			{Name: "cancel", Src: []string{OrderPending, OrderAssessing, OrderInReview}, Dst: OrderCancelled},
			{Name: "cancel", Src: []string{OrderReserving, OrderReleasingExtra, OrderCharging}, Dst: OrderRefunding},

			{Name: "refunded", Src: []string{OrderRefunding}, Dst: OrderReleasingAll},
			{Name: "released", Src: []string{OrderReleasingAll}, Dst: OrderFailed},
			{Name: "release_cancelled", Src: []string{OrderReleasingAll}, Dst: OrderCancelled},
		},
	}
}

// joinReservations is the fan-in of the reservations: the first success
// wins, and is recorded as the order's reservation and warehouse; other
// successes, and reservations in doubt, are released next. With no
// success, an order with a reservation in doubt compensates; one declined
// everywhere fails.
func joinReservations(in JoinInput) JoinDecision {
	var winner *BranchOutcome
	extra, doubt := false, false
	for i := range in.Branches {
		b := &in.Branches[i]
		switch {
		case b.Succeeded && (winner == nil || b.At.Before(winner.At)):
			if winner != nil {
				extra = true
			}
			winner = b
		case b.Succeeded:
			extra = true
		case b.InDoubt:
			doubt = true
		}
	}
	switch {
	case winner != nil:
		d := JoinDecision{Event: "reserved", Results: map[string]string{
			ResultReservationID: winner.Results[ResultReservationID], ResultWarehouse: winner.Branch,
		}}
		if extra || doubt {
			d.Event = "reserved_extra"
		}
		return d
	case doubt:
		return JoinDecision{Event: "reserve_unsettled"}
	}
	return JoinDecision{Event: "out_of_stock"}
}

// OrderRegistry returns a registry with versions 1 and 2 of the order
// workflow, version 2 configured by o, and version as the one new orders
// take (0: version 1).
func OrderRegistry(o OrderV2Options, version int) (*Registry, error) {
	r := NewRegistry()
	if err := r.Register(OrderV1()); err != nil {
		return nil, err
	}
	if err := r.Register(OrderV2(o)); err != nil {
		return nil, err
	}
	if err := r.SetDefault(OrderWorkflow, cmp.Or(version, 1)); err != nil {
		return nil, err
	}
	return r, nil
}
