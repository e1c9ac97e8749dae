// Package audit checks the promises orderflow makes against what happened:
// it reads every order and the provider simulators' ledgers from Redis and
// reports each violation of the invariants below. `orderflow audit` and
// GET /v1/audit run it; the chaos harness ends with it.
//
//   - A completed order has exactly one reservation, one charge and one
//     shipment, and no refund and no release.
//   - A failed or cancelled order has a refund for every charge and a release
//     for every reservation, and has not shipped.
//   - No order stays unfinished longer than a bound.
//   - No idempotency key was applied twice.
//   - No effect belongs to an order that does not exist (an order answered
//     with an error must not have run).
//
// The ledgers are the simulators' (package providers). With real providers,
// their own records take that place.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The rules a violation can break.
const (
	RuleCompleted   = "completed_effects"
	RuleCompensated = "compensated_effects"
	RuleStuck       = "unfinished_too_long"
	RuleDoubleKey   = "key_applied_twice"
	RuleOrphan      = "effect_without_order"
	// RuleDuplicateOrders: two orders were made under one Idempotency-Key.
	RuleDuplicateOrders = "duplicate_orders_per_key"
)

// Config tunes an audit.
type Config struct {
	// MaxRunning is how long an order may stay unfinished. Default 1h.
	MaxRunning time.Duration
	// Now is the time the audit runs at. Default time.Now().
	Now time.Time
}

// Violation is one broken promise.
type Violation struct {
	Rule    string `json:"rule"`
	OrderID string `json:"order_id,omitempty"`
	Key     string `json:"key,omitempty"`
	Detail  string `json:"detail"`
}

// Report is the outcome of an audit.
type Report struct {
	CheckedAt time.Time `json:"checked_at"`
	// Orders counts the orders by status.
	Orders map[string]int `json:"orders"`
	// Effects counts the ledger entries by operation.
	Effects    map[string]int `json:"effects"`
	Violations []Violation    `json:"violations"`
}

// OK reports whether the audit found nothing wrong.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Total returns the number of orders audited.
func (r *Report) Total() int {
	n := 0
	for _, c := range r.Orders {
		n += c
	}
	return n
}

// orderRow is what the audit needs of one order.
type orderRow struct {
	status  string
	state   string
	created time.Time
}

// Run audits the orders and ledgers in rdb.
func Run(ctx context.Context, rdb redis.UniversalClient, cfg Config) (*Report, error) {
	cfg.MaxRunning = cmp.Or(cfg.MaxRunning, time.Hour)
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	orders, err := readOrders(ctx, rdb)
	if err != nil {
		return nil, err
	}
	rep := &Report{CheckedAt: cfg.Now.UTC(), Orders: map[string]int{}, Effects: map[string]int{}, Violations: []Violation{}}
	effects := map[string]map[string]int{} // order -> op -> count
	keys := map[string]int{}
	ledger := providers.NewLedger(rdb)
	for _, p := range []string{providers.ProviderInventory, providers.ProviderPayment, providers.ProviderShipping} {
		entries, err := ledger.All(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("reading the %s ledger: %w", p, err)
		}
		for _, e := range entries {
			rep.Effects[e.Op]++
			keys[e.Key]++
			if effects[e.OrderID] == nil {
				effects[e.OrderID] = map[string]int{}
			}
			effects[e.OrderID][e.Op]++
		}
	}
	for key, n := range keys {
		if n > 1 {
			rep.add(Violation{Rule: RuleDoubleKey, Key: key, Detail: fmt.Sprintf("applied %d times", n)})
		}
	}
	for id, ops := range effects {
		if _, ok := orders[id]; !ok {
			rep.add(Violation{Rule: RuleOrphan, OrderID: id, Detail: fmt.Sprintf("effects %v for an order that does not exist", ops)})
		}
	}
	for id, o := range orders {
		rep.Orders[o.status]++
		checkOrder(rep, cfg, id, o, effects[id])
	}
	sort.Slice(rep.Violations, func(i, j int) bool {
		a, b := rep.Violations[i], rep.Violations[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.OrderID+a.Key < b.OrderID+b.Key
	})
	return rep, nil
}

func (r *Report) add(v Violation) { r.Violations = append(r.Violations, v) }

// checkOrder applies the per-order invariants.
func checkOrder(rep *Report, cfg Config, id string, o orderRow, ops map[string]int) {
	n := func(op string) int { return ops[op] }
	switch statemachine.Status(o.status) {
	case statemachine.StatusCompleted:
		if n(providers.OpReserve) != 1 || n(providers.OpCharge) != 1 || n(providers.OpShip) != 1 ||
			n(providers.OpRefund) != 0 || n(providers.OpRelease) != 0 {
			rep.add(Violation{Rule: RuleCompleted, OrderID: id, Detail: describe(ops)})
		}
	case statemachine.StatusFailed, statemachine.StatusCancelled:
		if n(providers.OpRefund) != n(providers.OpCharge) || n(providers.OpRelease) != n(providers.OpReserve) ||
			n(providers.OpShip) != 0 {
			rep.add(Violation{Rule: RuleCompensated, OrderID: id, Detail: o.status + ": " + describe(ops)})
		}
	default:
		if age := cfg.Now.Sub(o.created); age > cfg.MaxRunning {
			rep.add(Violation{Rule: RuleStuck, OrderID: id,
				Detail: fmt.Sprintf("still %s after %s", o.state, age.Round(time.Second))})
		}
	}
}

func describe(ops map[string]int) string {
	return fmt.Sprintf("reserve %d, charge %d, ship %d, refund %d, release %d",
		ops[providers.OpReserve], ops[providers.OpCharge], ops[providers.OpShip], ops[providers.OpRefund], ops[providers.OpRelease])
}

// readOrders reads every order of the list index, in batches.
func readOrders(ctx context.Context, rdb redis.UniversalClient) (map[string]orderRow, error) {
	ids, err := rdb.ZRange(ctx, statemachine.IndexKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the order index: %w", err)
	}
	out := make(map[string]orderRow, len(ids))
	const batch = 500
	for start := 0; start < len(ids); start += batch {
		part := ids[start:min(start+batch, len(ids))]
		cmds := make([]*redis.SliceCmd, len(part))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range part {
				cmds[i] = p.HMGet(ctx, statemachine.RecordKey(id), "stt", "st", "ct")
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("reading orders: %w", err)
		}
		for i, id := range part {
			v := cmds[i].Val()
			status, _ := v[0].(string)
			if status == "" {
				continue // expired since it was indexed
			}
			state, _ := v[1].(string)
			ct, _ := v[2].(string)
			var us int64
			fmt.Sscan(ct, &us)
			out[id] = orderRow{status: status, state: state, created: time.UnixMicro(us)}
		}
	}
	return out, nil
}
