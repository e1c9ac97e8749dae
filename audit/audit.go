// Package audit checks the promises orderflow makes against what happened:
// it reads the orders and the provider ledgers from Redis and reports each
// violation of the invariants below. `orderflow audit` and GET /v1/audit run
// it; the chaos harness ends with it.
//
//   - A completed order has exactly one reservation, one charge and one
//     shipment, and no refund and no release (completed_effects). With
//     several warehouses, exactly one reservation is not released, at one
//     warehouse: the others were released where they were made.
//   - A failed or cancelled order has a refund for every charge and a release
//     for every reservation, at its warehouse, and has not shipped
//     (compensated_effects).
//   - No order stays unfinished longer than a bound (unfinished_too_long).
//   - No idempotency key was applied twice (key_applied_twice).
//   - No effect belongs to an order that does not exist: an order answered
//     with an error must not have run (effect_without_order).
//   - One Idempotency-Key made one order: an order created under a key that
//     is bound to another order is a duplicate (duplicate_orders_per_key).
//   - With Config.Flow, the flow-control limits held from the providers'
//     side (rate_limit_exceeded, concurrency_limit_exceeded; see flow.go).
//
// # Incarnations
//
// An order_id may name a new order once the record of its earlier one
// expired; the new order's provider keys carry its incarnation
// (statemachine.KeyPrefix). Only the effects of an order's current
// incarnation count against it; the others are counted in the report
// (earlier_incarnations) and otherwise left alone.
//
// # Bounded memory
//
// The audit streams (Stream, WriteJSON): it reads the order index in
// batches, each order's few record fields and its ledger entries, applies
// the rules order by order, and then scans the ledgers for orders that do
// not exist. What it holds is one batch, the counts, and the IDs of the
// orphans it reported, never every order or every effect. Run collects the
// violations into a Report.
//
// The risk agent's assessments are read and counted (Report.Effects) but
// are no effects: they change nothing outside, and no rule counts them.
//
// The ledgers are the simulators' (package providers). With real providers,
// their own records take that place (Config.Ledger).
package audit

import (
	"cmp"
	"context"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// The rules a violation can break.
const (
	RuleCompleted    = "completed_effects"
	RuleCompensated  = "compensated_effects"
	RuleStuck        = "unfinished_too_long"
	RuleDoubleKey    = "key_applied_twice"
	RuleOrphan       = "effect_without_order"
	RuleDuplicateKey = "duplicate_orders_per_key"
)

// Config tunes an audit.
type Config struct {
	// MaxRunning is how long an order may stay unfinished. Default 1h.
	MaxRunning time.Duration
	// Now is the time the audit runs at. Default time.Now().
	Now time.Time
	// BatchSize is how many orders are read and checked at once; it bounds
	// the audit's memory. Default 500.
	BatchSize int
	// Ledger is where the providers' effects are read. Default: the
	// simulators' ledgers in the audited Redis.
	Ledger Ledger
	// Flow, when set, are the flow-control limits the workers ran with,
	// checked against the providers' call logs (the Ledger must be a
	// CallLog, as the simulators' is). Default nil: not checked.
	Flow *FlowLimits
	// Shards is how many shards the order index is split into
	// (statemachine.ResolveShards). Default statemachine.DefaultShards.
	Shards int
}

// withDefaults returns the config with its zero fields set.
func (c Config) withDefaults(rdb redis.UniversalClient) Config {
	c.MaxRunning = cmp.Or(c.MaxRunning, time.Hour)
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	c.BatchSize = cmp.Or(c.BatchSize, 500)
	if c.Ledger == nil {
		c.Ledger = providers.NewLedger(rdb)
	}
	if c.Shards == 0 {
		c.Shards = statemachine.DefaultShards(rdb)
	}
	return c
}

// Violation is one broken promise.
type Violation struct {
	Rule    string `json:"rule"`
	OrderID string `json:"order_id,omitempty"`
	// Key is the provider idempotency key (key_applied_twice) or the hash
	// of the Idempotency-Key (duplicate_orders_per_key) concerned.
	Key    string `json:"key,omitempty"`
	Detail string `json:"detail"`
}

// Report is the outcome of an audit.
type Report struct {
	CheckedAt time.Time `json:"checked_at"`
	// Orders counts the orders by status.
	Orders map[string]int `json:"orders"`
	// Effects counts the ledger entries read, by operation.
	Effects map[string]int `json:"effects"`
	// EarlierIncarnations counts the ledger entries of orders' earlier
	// incarnations, which no rule counts against the current order.
	EarlierIncarnations int         `json:"earlier_incarnations"`
	Violations          []Violation `json:"violations"`
	// Flow is what the flow rules measured, when they ran.
	Flow *FlowReport `json:"flow,omitempty"`
}

// newReport returns an empty report of an audit at now.
func newReport(now time.Time) *Report {
	return &Report{CheckedAt: now.UTC(), Orders: map[string]int{}, Effects: map[string]int{}, Violations: []Violation{}}
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

// Run audits the orders and ledgers in rdb and returns the whole report,
// its violations sorted by rule, then order and key. It is Stream with the
// violations collected.
func Run(ctx context.Context, rdb redis.UniversalClient, cfg Config) (*Report, error) {
	var found []Violation
	rep, err := Stream(ctx, rdb, cfg, func(v Violation) error {
		found = append(found, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.OrderID+"\x00"+a.Key < b.OrderID+"\x00"+b.Key
	})
	rep.Violations = append(rep.Violations, found...)
	return rep, nil
}
