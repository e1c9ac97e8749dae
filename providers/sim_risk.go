package providers

import (
	"context"
	"encoding/json"
	"net/http"
)

func (r *AssessRequest) check(string) string {
	switch {
	case r.OrderID == "":
		return "order_id is required"
	case r.AmountCents < 0:
		return "amount_cents must not be negative"
	}
	return checkItems(r.Items)
}

// assess serves POST /risk/assessments: the agent decides by the rules of
// its faults (Faults.RejectCustomers and the like), and the first decision
// given to a key is stored, so that the key keeps it whatever the rules
// become. Its ledger entry shows that the agent was asked, once per key;
// it changes nothing outside.
func (s *Simulator) assess(ctx context.Context, c simCall[*AssessRequest]) (answer, error) {
	a := c.faults.risk.decide(c.req.CustomerID, c.req.AmountCents)
	e := c.entry(c.req.OrderID)
	e.ID = simID("asm_", ProviderRisk, OpAssess, c.key)
	e.AmountCents, e.Currency, e.Decision = c.req.AmountCents, c.req.Currency, a.Decision
	body, err := json.Marshal(a)
	if err != nil {
		return answer{}, err
	}
	return s.record(ctx, c.guard(), &e, answer{status: http.StatusOK, body: string(body)}, "")
}
