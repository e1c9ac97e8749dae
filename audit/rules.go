package audit

import (
	"fmt"
	"time"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// checkOrder counts one order and its ledger entries, and returns the
// violations of the per-order rules. boundTo is the order its
// Idempotency-Key is bound to ("" without a key, or once the binding
// expired).
func (a *auditor) checkOrder(s *statemachine.Summary, entries []providers.LedgerEntry, boundTo string) []Violation {
	a.rep.Orders[string(s.Status)]++
	a.count(entries)
	current := make([]providers.LedgerEntry, 0, len(entries))
	for _, e := range entries {
		if n := statemachine.KeyIncarnation(s.ID, e.Key); n != 0 && n < s.Incarnation {
			a.rep.EarlierIncarnations++
			continue
		}
		current = append(current, e)
	}
	current = effectsOf(current)
	out := doubleKeys(s.ID, current)
	ops := opCounts(current)
	n := func(op string) int { return ops[op] }
	stock := stockOf(current)
	switch s.Status {
	case statemachine.StatusCompleted:
		if !stock.heldOnce(ops) || n(providers.OpCharge) != 1 || n(providers.OpShip) != 1 || n(providers.OpRefund) != 0 {
			out = append(out, Violation{Rule: RuleCompleted, OrderID: s.ID, Detail: describe(ops, stock)})
		}
	case statemachine.StatusFailed, statemachine.StatusCancelled:
		if n(providers.OpRefund) != n(providers.OpCharge) || !stock.allReleased(ops) || n(providers.OpShip) != 0 {
			out = append(out, Violation{Rule: RuleCompensated, OrderID: s.ID, Detail: string(s.Status) + ": " + describe(ops, stock)})
		}
	default:
		if age := a.cfg.Now.Sub(s.Created); age > a.cfg.MaxRunning {
			out = append(out, Violation{Rule: RuleStuck, OrderID: s.ID,
				Detail: fmt.Sprintf("still %s after %s", s.State, age.Round(time.Second))})
		}
	}
	if s.KeyHash != "" && boundTo != "" && boundTo != s.ID {
		out = append(out, Violation{Rule: RuleDuplicateKey, OrderID: s.ID, Key: s.KeyHash,
			Detail: "created under an Idempotency-Key that is bound to order " + boundTo})
	}
	return out
}

// checkOrphan counts the ledger entries of an order that does not exist and
// returns its violations.
func (a *auditor) checkOrphan(id string, entries []providers.LedgerEntry) []Violation {
	a.count(entries)
	entries = effectsOf(entries)
	if len(entries) == 0 {
		return nil // its effects went away since the scan met them
	}
	out := doubleKeys(id, entries)
	return append(out, Violation{Rule: RuleOrphan, OrderID: id,
		Detail: "effects for an order that does not exist: " + describe(opCounts(entries), stockOf(entries))})
}

// effectsOf returns the entries that are effects: all but the risk
// agent's assessments, which change nothing outside.
func effectsOf(entries []providers.LedgerEntry) []providers.LedgerEntry {
	out := entries[:0:0]
	for _, e := range entries {
		if e.Op != providers.OpAssess {
			out = append(out, e)
		}
	}
	return out
}

// doubleKeys returns a violation for each idempotency key applied more than
// once among one order's entries.
func doubleKeys(id string, entries []providers.LedgerEntry) []Violation {
	counts := make(map[string]int, len(entries))
	var keys []string // in the order first applied
	for _, e := range entries {
		if counts[e.Key] == 0 {
			keys = append(keys, e.Key)
		}
		counts[e.Key]++
	}
	var out []Violation
	for _, k := range keys {
		if counts[k] > 1 {
			out = append(out, Violation{Rule: RuleDoubleKey, OrderID: id, Key: k, Detail: fmt.Sprintf("applied %d times", counts[k])})
		}
	}
	return out
}

// opCounts counts entries by operation.
func opCounts(entries []providers.LedgerEntry) map[string]int {
	ops := map[string]int{}
	for _, e := range entries {
		ops[e.Op]++
	}
	return ops
}

func describe(ops map[string]int, st stock) string {
	d := fmt.Sprintf("reserve %d, charge %d, ship %d, refund %d, release %d",
		ops[providers.OpReserve], ops[providers.OpCharge], ops[providers.OpShip], ops[providers.OpRefund], ops[providers.OpRelease])
	if st.perWarehouse {
		d += "; still reserved at: " + st.describeHeld()
	}
	return d
}
