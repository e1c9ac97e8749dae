package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/providers"
)

// Ledger is where an audit reads the effects the providers applied.
type Ledger interface {
	// ForOrders returns the entries of each of orderIDs that has any,
	// each order's in the order applied.
	ForOrders(ctx context.Context, orderIDs []string) (map[string][]providers.LedgerEntry, error)
	// ScanOrders calls fn with the ID of every order that has entries, at
	// least once each; an error from fn stops the scan.
	ScanOrders(ctx context.Context, fn func(orderID string) error) error
}

// ledgerProviders are the providers whose ledgers are read, in ledger
// order.
var ledgerProviders = []string{providers.ProviderInventory, providers.ProviderPayment, providers.ProviderShipping}

// simLedger reads the simulators' per-order ledger lists in Redis,
// {sim:<provider>}:ledger:order:<order_id>, one JSON LedgerEntry each.
type simLedger struct{ rdb redis.UniversalClient }

// orderLedgerPrefix is what the keys of one provider's per-order ledgers
// start with.
func orderLedgerPrefix(provider string) string { return "{sim:" + provider + "}:ledger:order:" }

// ForOrders implements Ledger in one round trip.
func (l simLedger) ForOrders(ctx context.Context, orderIDs []string) (map[string][]providers.LedgerEntry, error) {
	out := make(map[string][]providers.LedgerEntry, len(orderIDs))
	if len(orderIDs) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringSliceCmd, 0, len(orderIDs)*len(ledgerProviders))
	if _, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range orderIDs {
			for _, prov := range ledgerProviders {
				cmds = append(cmds, p.LRange(ctx, orderLedgerPrefix(prov)+id, 0, -1))
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading order ledgers: %w", err)
	}
	for i, cmd := range cmds {
		id := orderIDs[i/len(ledgerProviders)]
		for _, raw := range cmd.Val() {
			var e providers.LedgerEntry
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return nil, fmt.Errorf("decoding a ledger entry of order %s: %w", id, err)
			}
			out[id] = append(out[id], e)
		}
	}
	return out, nil
}

// ScanOrders implements Ledger with SCAN, provider by provider. Each
// provider's keys share one hash tag, so on a Redis Cluster they are all
// on the node that serves its slot.
func (l simLedger) ScanOrders(ctx context.Context, fn func(orderID string) error) error {
	for _, prov := range ledgerProviders {
		prefix := orderLedgerPrefix(prov)
		var node redis.Cmdable = l.rdb
		if cc, ok := l.rdb.(*redis.ClusterClient); ok {
			n, err := cc.MasterForKey(ctx, prefix)
			if err != nil {
				return fmt.Errorf("finding the %s ledger's node: %w", prov, err)
			}
			node = n
		}
		it := node.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			if id, ok := strings.CutPrefix(it.Val(), prefix); ok && id != "" {
				if err := fn(id); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("scanning the %s ledger: %w", prov, err)
		}
	}
	return nil
}
