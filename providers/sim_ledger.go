package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// LedgerEntry is one effect a simulated provider applied.
type LedgerEntry struct {
	// Provider is "inventory", "payment", "shipping" or "risk".
	Provider string `json:"provider"`
	// Op is the operation: reserve, release, charge, refund, ship or
	// assess. An assessment changes nothing outside: its entry only shows
	// that the agent was asked, once per key.
	Op string `json:"op"`
	// Key is the idempotency key of the call that applied the effect.
	Key string `json:"key"`
	// OrderID is the order the effect belongs to.
	OrderID string `json:"order_id"`
	// ID is what the effect created: the reservation ID, transaction ID,
	// refund ID, tracking number or assessment ID; for a release, the
	// reservation ID.
	ID string `json:"id"`
	// Ref is what the effect refers to: for a refund the transaction ID,
	// for a shipment the reservation ID.
	Ref string `json:"ref,omitempty"`
	// AmountCents is the amount of a charge or refund.
	AmountCents int64 `json:"amount_cents,omitempty"`
	// Currency is the currency of a charge or refund.
	Currency string `json:"currency,omitempty"`
	// Warehouse is the warehouse of a reservation or release, when it
	// names one; empty at the default warehouse.
	Warehouse string `json:"warehouse,omitempty"`
	// Decision is an assessment's decision.
	Decision string `json:"decision,omitempty"`
	// At is when the simulator received the call, in UTC.
	At time.Time `json:"at"`
}

// marshal returns e as the JSON stored in Redis.
func (e LedgerEntry) marshal() (string, error) {
	b, err := json.Marshal(e)
	return string(b), err
}

// Ledger reads the simulators' ledgers from Redis.
type Ledger struct {
	rdb redis.UniversalClient
}

// NewLedger returns a reader of the ledgers kept in rdb.
func NewLedger(rdb redis.UniversalClient) *Ledger { return &Ledger{rdb: rdb} }

// ForOrder returns every provider's entries for one order: inventory's,
// then payment's, then shipping's, then risk's, each in the order they were
// applied.
func (l *Ledger) ForOrder(ctx context.Context, orderID string) ([]LedgerEntry, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(providerNames))
	for i, p := range providerNames {
		cmds[i] = pipe.LRange(ctx, keysOf(p).orderLedger(orderID), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading ledger of order %s: %w", orderID, err)
	}
	entries := []LedgerEntry{}
	for _, cmd := range cmds {
		var err error
		if entries, err = appendEntries(entries, cmd.Val()); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// ForOrders returns every provider's entries for each of orderIDs, in one
// pipelined round trip: the value of an order lists inventory's entries,
// then payment's, then shipping's, then risk's, as ForOrder does. Every order asked for
// has a value, empty when no provider has an entry for it.
func (l *Ledger) ForOrders(ctx context.Context, orderIDs []string) (map[string][]LedgerEntry, error) {
	out := make(map[string][]LedgerEntry, len(orderIDs))
	if len(orderIDs) == 0 {
		return out, nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, 0, len(orderIDs)*len(providerNames))
	ids := make([]string, 0, len(orderIDs))
	for _, id := range orderIDs {
		if _, dup := out[id]; dup {
			continue
		}
		out[id] = []LedgerEntry{}
		ids = append(ids, id)
		for _, p := range providerNames {
			cmds = append(cmds, pipe.LRange(ctx, keysOf(p).orderLedger(id), 0, -1))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading ledgers of %d orders: %w", len(ids), err)
	}
	for i, id := range ids {
		entries := out[id]
		for _, cmd := range cmds[i*len(providerNames) : (i+1)*len(providerNames)] {
			var err error
			if entries, err = appendEntries(entries, cmd.Val()); err != nil {
				return nil, err
			}
		}
		out[id] = entries
	}
	return out, nil
}

// All returns all of one provider's entries, in the order they were applied.
func (l *Ledger) All(ctx context.Context, provider string) ([]LedgerEntry, error) {
	if !slices.Contains(providerNames, provider) {
		return nil, fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	return l.read(ctx, keysOf(provider).ledger())
}

// Stock returns the units of sku available for reservation at the default
// warehouse, and whether its stock is limited at all. A SKU no reservation
// has touched yet reads as the initial stock a simulator last applied, if
// any.
func (l *Ledger) Stock(ctx context.Context, sku string) (available int, limited bool, err error) {
	return l.StockAt(ctx, "", sku)
}

// StockAt is Stock at warehouse; "" is the default warehouse. Each
// warehouse starts with the initial stock.
func (l *Ledger) StockAt(ctx context.Context, warehouse, sku string) (available int, limited bool, err error) {
	k := inventoryKeys
	v, err := l.rdb.HGet(ctx, k.stock(warehouse), sku).Result()
	if errors.Is(err, redis.Nil) {
		v, err = l.rdb.Get(ctx, k.initialStock()).Result()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("reading stock of %s: %w", sku, err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, fmt.Errorf("reading stock of %s: %w", sku, err)
	}
	return n, true, nil
}

// read returns the entries of one ledger list.
func (l *Ledger) read(ctx context.Context, key string) ([]LedgerEntry, error) {
	raw, err := l.rdb.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading ledger %s: %w", key, err)
	}
	return appendEntries([]LedgerEntry{}, raw)
}

func appendEntries(entries []LedgerEntry, raw []string) ([]LedgerEntry, error) {
	for _, r := range raw {
		var e LedgerEntry
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("decoding ledger entry: %w", err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}
