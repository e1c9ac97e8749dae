package statemachine

import (
	"time"

	"github.com/looplab/fsm"
)

// The order workflow's name, and the names of its steps (activities).
const (
	OrderWorkflow = "order"

	StepReserve = "reserve"
	StepCharge  = "charge"
	StepShip    = "ship"
	StepRefund  = "refund"
	StepRelease = "release"
)

// The states of the order workflow, version 1.
const (
	OrderPending   = "pending"
	OrderReserving = "reserving"
	OrderCharging  = "charging"
	OrderShipping  = "shipping"
	OrderCompleted = "completed"
	OrderRefunding = "refunding"
	OrderReleasing = "releasing"
	OrderFailed    = "failed"
	OrderCancelled = "cancelled"
)

// DefaultQueue is the queue workflow steps run on unless a state names
// another.
const DefaultQueue = "workflow"

// The domain queues of the order workflow's steps, so that a flood of one
// kind of step cannot starve the others, and the resources (providers) the
// steps call, which flow control limits.
const (
	QueueInventory = "inventory"
	QueuePayments  = "payments"
	QueueShipping  = "shipping"

	ResourceInventory = "inventory"
	ResourcePayment   = "payment"
	ResourceShipping  = "shipping"
)

var forwardRetry = RetryPolicy{InitialInterval: 200 * time.Millisecond, MaxInterval: 10 * time.Second, Coefficient: 2, MaxAttempts: 6}

// compensationRetry and irreversibleRetry are the policies of steps that
// never give up: their MaxAttempts is how many attempts they make (about 25
// minutes at the 30s cap) before the step is dead-lettered for an operator.
var compensationRetry = RetryPolicy{InitialInterval: 200 * time.Millisecond, MaxInterval: 30 * time.Second, Coefficient: 2, MaxAttempts: 50}

var irreversibleRetry = RetryPolicy{InitialInterval: 200 * time.Millisecond, MaxInterval: 30 * time.Second, Coefficient: 2, MaxAttempts: 50}

// OrderV1 returns version 1 of the order workflow:
// pending → reserving → charging → shipping → completed, with compensation
// (refund, then release) when a later step fails or the order is cancelled.
func OrderV1() *Definition {
	cancel := map[string]string{SignalCancel: "cancel"}
	return &Definition{
		Name:    OrderWorkflow,
		Version: 1,
		Initial: OrderPending,
		Queue:   DefaultQueue,
		States: []State{
			{Name: OrderPending, Status: StatusRunning, OnSuccess: "start", OnSignal: cancel,
				Doc: "Accepted and durably queued; no step has started. A cancel here ends the order at once, since nothing was done."},
			{Name: OrderReserving, Status: StatusRunning, Step: StepReserve, Retry: forwardRetry, Queue: QueueInventory, Resource: ResourceInventory,
				OnSuccess: "reserved", OnFailure: "reserve_failed", OnExhausted: "reserve_unsettled", OnSignal: cancel,
				Doc: "Reserving stock with the inventory provider (key <order_id>:reserve). Out of stock ends the order failed; a cancel, or attempts that run out without a definite answer, compensate: refund by key (in case a charge exists that the record lost), then settle and release the reservation."},
			{Name: OrderCharging, Status: StatusRunning, Step: StepCharge, Retry: forwardRetry, Queue: QueuePayments, Resource: ResourcePayment,
				Requires:  []string{ResultReservationID},
				OnSuccess: "charged", OnFailure: "charge_failed", OnExhausted: "charge_unsettled", OnSignal: cancel,
				Doc: "Charging the customer (key <order_id>:charge). A decline releases the stock; attempts that run out without a definite answer settle and refund the charge, then release; a cancel refunds and releases."},
			{Name: OrderShipping, Status: StatusRunning, Step: StepShip, Retry: irreversibleRetry, Irreversible: true, Queue: QueueShipping, Resource: ResourceShipping,
				Requires:  []string{ResultReservationID, "transaction_id"},
				OnSuccess: "shipped", OnFailure: "ship_failed",
				Doc: "Shipping the reserved stock (key <order_id>:ship). The point of no return: cancel is refused, and as a shipment cannot be recalled, every answer but a success or the named decline (422 undeliverable) is retried until the provider answers definitely (50 attempts, then dead-lettered for an operator); the decline refunds and releases."},
			{Name: OrderCompleted, Status: StatusCompleted,
				Doc: "Reserved, charged and shipped. Terminal."},
			{Name: OrderRefunding, Status: StatusRunning, Step: StepRefund, Retry: compensationRetry, Compensation: true, Queue: QueuePayments, Resource: ResourcePayment,
				OnSuccess: "refunded",
				Doc:       "Compensation: refunding the charge (key <order_id>:refund). A charge in doubt is settled first by repeating it under the charge key; with no charge attempt on record the refund is sent by key without a transaction ID, so a charge the record lost is refunded too. Never gives up: after 50 attempts it is dead-lettered for an operator."},
			{Name: OrderReleasing, Status: StatusRunning, Step: StepRelease, Retry: compensationRetry, Compensation: true, Queue: QueueInventory, Resource: ResourceInventory,
				OnSuccess: "released", OnSuccessCancelled: "release_cancelled",
				Doc: "Compensation: releasing the reserved stock (key <order_id>:release), settling a reservation in doubt first by repeating it under its key. Ends failed, or cancelled when a cancel started it. Never gives up: after 50 attempts it is dead-lettered for an operator."},
			{Name: OrderFailed, Status: StatusFailed,
				Doc: "A step failed for good and everything done before it was undone. Terminal."},
			{Name: OrderCancelled, Status: StatusCancelled,
				Doc: "Cancelled on request and everything done before was undone. Terminal."},
		},
		Events: fsm.Events{
			{Name: "start", Src: []string{OrderPending}, Dst: OrderReserving},
			{Name: "reserved", Src: []string{OrderReserving}, Dst: OrderCharging},
			{Name: "charged", Src: []string{OrderCharging}, Dst: OrderShipping},
			{Name: "shipped", Src: []string{OrderShipping}, Dst: OrderCompleted},

			{Name: "reserve_failed", Src: []string{OrderReserving}, Dst: OrderFailed},
			{Name: "reserve_unsettled", Src: []string{OrderReserving}, Dst: OrderRefunding},
			{Name: "charge_failed", Src: []string{OrderCharging}, Dst: OrderReleasing},
			{Name: "charge_unsettled", Src: []string{OrderCharging}, Dst: OrderRefunding},
			{Name: "ship_failed", Src: []string{OrderShipping}, Dst: OrderRefunding},

			{Name: "cancel", Src: []string{OrderPending}, Dst: OrderCancelled},
			{Name: "cancel", Src: []string{OrderReserving}, Dst: OrderRefunding},
			{Name: "cancel", Src: []string{OrderCharging}, Dst: OrderRefunding},

			{Name: "refunded", Src: []string{OrderRefunding}, Dst: OrderReleasing},
			{Name: "released", Src: []string{OrderReleasing}, Dst: OrderFailed},
			{Name: "release_cancelled", Src: []string{OrderReleasing}, Dst: OrderCancelled},
		},
	}
}

// NewOrderRegistry returns a registry with every built-in order workflow
// version (version 2 with its default options), new orders taking version
// 1.
func NewOrderRegistry() *Registry {
	r, err := OrderRegistry(OrderV2Options{}, 1)
	if err != nil {
		panic(err) // the built-in definitions are valid
	}
	return r
}
