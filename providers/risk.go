package providers

import (
	"context"
	"fmt"
)

// The decisions of the risk-assessment agent.
const (
	// DecisionApprove lets the order go on.
	DecisionApprove = "approve"
	// DecisionReview holds the order for a human's approve or reject.
	DecisionReview = "review"
	// DecisionReject ends the order.
	DecisionReject = "reject"
)

// knownDecision reports whether d is one of the three decisions.
func knownDecision(d string) bool {
	return d == DecisionApprove || d == DecisionReview || d == DecisionReject
}

// AssessRequest asks the risk-assessment agent about an order. Its key is
// <order_id>:assess.
type AssessRequest struct {
	IdempotencyKey string `json:"-"`
	OrderID        string `json:"order_id"`
	CustomerID     string `json:"customer_id"`
	AmountCents    int64  `json:"amount_cents"`
	Currency       string `json:"currency"`
	Items          []Item `json:"items"`
}

// Assessment is the agent's answer.
type Assessment struct {
	// Decision is DecisionApprove, DecisionReview or DecisionReject.
	Decision string `json:"decision"`
	// Reason says why, for the people who review the order.
	Reason string `json:"reason"`
}

// Risk assesses orders. An assessment changes nothing outside, but the
// same key always gets the same decision. A "reject" is a decision, not an
// error: the agent has no decline.
type Risk interface {
	// Assess returns the agent's decision. An answer that is not one of
	// the three decisions is an ambiguous *Error.
	Assess(ctx context.Context, r AssessRequest) (Assessment, error)
}

// riskRules decide an assessment by customer and amount, for the simulator
// and InProcess alike. A reject rule wins over a review rule; no rule
// matching approves.
type riskRules struct {
	reviewCustomers, rejectCustomers map[string]bool
	// reviewAbove and rejectAbove are amount_cents thresholds; 0 or less
	// is off.
	reviewAbove, rejectAbove int64
}

// decide returns the decision for an order and the reason, which names
// the rule that matched.
func (r riskRules) decide(customerID string, amountCents int64) Assessment {
	switch {
	case r.rejectCustomers[customerID]:
		return Assessment{DecisionReject, fmt.Sprintf("customer %s is on the reject list", customerID)}
	case r.rejectAbove > 0 && amountCents > r.rejectAbove:
		return Assessment{DecisionReject, fmt.Sprintf("amount_cents %d is above the reject threshold %d", amountCents, r.rejectAbove)}
	case r.reviewCustomers[customerID]:
		return Assessment{DecisionReview, fmt.Sprintf("customer %s is on the review list", customerID)}
	case r.reviewAbove > 0 && amountCents > r.reviewAbove:
		return Assessment{DecisionReview, fmt.Sprintf("amount_cents %d is above the review threshold %d", amountCents, r.reviewAbove)}
	}
	return Assessment{DecisionApprove, "no risk rule matched"}
}
