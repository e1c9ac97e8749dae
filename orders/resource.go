package orders

import (
	"cmp"
	"encoding/json"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// The result keys the order steps record.
const (
	ResultReservationID  = "reservation_id"
	ResultTransactionID  = "transaction_id"
	ResultTrackingNumber = "tracking_number"
	ResultRefundID       = "refund_id"
)

// Resource is the order as the API shows it (API.md, "The order resource").
type Resource struct {
	OrderID         string            `json:"order_id"`
	CustomerID      string            `json:"customer_id"`
	Currency        string            `json:"currency"`
	AmountCents     int64             `json:"amount_cents"`
	Items           []Item            `json:"items"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Status          string            `json:"status"`
	State           string            `json:"state"`
	WorkflowVersion int               `json:"workflow_version"`
	Priority        string            `json:"priority"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	ReservationID   string            `json:"reservation_id"`
	TransactionID   string            `json:"transaction_id"`
	TrackingNumber  string            `json:"tracking_number"`
	RefundID        string            `json:"refund_id"`
	Attempts        map[string]int    `json:"attempts"`
	LastError       string            `json:"last_error"`
	// CancelRequested is set while a cancel waits for the current step to
	// end.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// DeadLetter is set while a step that never gives up (a compensation,
	// a shipment) waits for an operator after exhausting its attempts.
	DeadLetter *DeadLetter `json:"dead_letter,omitempty"`

	// Fields of workflow version 2 (API.md), absent where they do not
	// apply.

	// Paused is set while an operator has paused the order.
	Paused bool `json:"paused,omitempty"`
	// Review is set while the order waits in review.
	Review *Review `json:"review,omitempty"`
	// RiskDecision is the risk agent's decision: approve, review or reject.
	RiskDecision string `json:"risk_decision,omitempty"`
	// Warehouse is where the stock was reserved.
	Warehouse string `json:"warehouse,omitempty"`
	// Progress is a long step's last reported progress.
	Progress *Progress `json:"progress,omitempty"`
}

// Review is an order waiting for a human: why, and until when.
type Review struct {
	Reason   string    `json:"reason"`
	Deadline time.Time `json:"deadline"`
}

// Progress is a long step's progress, updated by its heartbeats.
type Progress struct {
	Step    string    `json:"step"`
	Percent int       `json:"percent"`
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}

// DeadLetter says which step waits for an operator to retry or resolve it.
type DeadLetter struct {
	Step string `json:"step"`
}

// NewResource renders an instance as an order resource.
func NewResource(in *statemachine.Instance) Resource {
	var input Input
	_ = json.Unmarshal(in.Input, &input)
	if input.Items == nil {
		input.Items = []Item{}
	}
	attempts := make(map[string]int, len(in.Attempts))
	for step, n := range in.Attempts {
		if n > 0 {
			attempts[step] = n
		}
	}
	r := Resource{
		OrderID: in.ID, CustomerID: input.CustomerID, Currency: input.Currency,
		AmountCents: input.AmountCents, Items: input.Items, Metadata: input.Metadata,
		Status: string(in.Status), State: in.State, WorkflowVersion: in.Version,
		Priority:  string(cmp.Or(in.Priority, statemachine.PriorityNormal)),
		CreatedAt: in.Created, UpdatedAt: in.Updated,
		ReservationID:  in.Results[ResultReservationID],
		TransactionID:  in.Results[ResultTransactionID],
		TrackingNumber: in.Results[ResultTrackingNumber],
		RefundID:       in.Results[ResultRefundID],
		Attempts:       attempts, LastError: in.LastError,
		CancelRequested: in.Signals[statemachine.SignalCancel],
	}
	if in.DeadLetter != "" {
		r.DeadLetter = &DeadLetter{Step: in.DeadLetter}
	}
	r.Paused = in.Paused
	r.RiskDecision = in.Results[ResultDecision]
	r.Warehouse = in.Results[ResultWarehouse]
	if in.State == statemachine.OrderInReview && !in.Deadline.IsZero() {
		r.Review = &Review{Reason: in.Results[ResultDecisionReason], Deadline: in.Deadline}
	}
	if in.Progress != "" {
		var p Progress
		if json.Unmarshal([]byte(in.Progress), &p) == nil {
			r.Progress = &p
		}
	}
	return r
}
