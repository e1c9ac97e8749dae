package providers

import "context"

// Assess implements Risk by the rules of ReviewCustomers, RejectCustomers,
// ReviewAboveCents and RejectAboveCents, as the simulator decides: the
// first decision for a key is its decision for good.
func (p *InProcess) Assess(ctx context.Context, r AssessRequest) (Assessment, error) {
	a, err := p.answer(ctx, opAssess, r.IdempotencyKey, func() inprocAnswer {
		rules := riskRules{
			reviewCustomers: p.ReviewCustomers, rejectCustomers: p.RejectCustomers,
			reviewAbove: p.ReviewAboveCents, rejectAbove: p.RejectAboveCents,
		}
		return inprocAnswer{assessment: rules.decide(r.CustomerID, r.AmountCents)}
	})
	return a.assessment, err
}
