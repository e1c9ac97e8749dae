package providers

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint of each SCAN step of ScanOrders, and so about
// how many order IDs it holds in memory at once.
const scanCount = 500

// ScanOrders calls fn once for each order ID that has a ledger entry at any
// provider that applies effects (not risk: an assessment changes nothing),
// in no particular order, holding about one SCAN batch in memory
// rather than every ID. It stops at the first error fn returns and returns
// it.
//
// It walks the per-order ledgers of inventory, then payment, then shipping,
// and skips an ID found at a later provider when it has entries at an
// earlier one, which was walked already. The walk gives SCAN's guarantees:
// on a ledger that does not change meanwhile every ID is passed exactly
// once, except that Redis may return a key twice while it resizes its
// keyspace. Entries appended during the walk may be missed or pass an ID
// twice, so a caller that needs exact results audits a quiet system.
func (l *Ledger) ScanOrders(ctx context.Context, fn func(orderID string) error) error {
	for i, p := range effectProviders {
		if err := l.scanProvider(ctx, p, effectProviders[:i], fn); err != nil {
			return err
		}
	}
	return nil
}

// scanProvider passes fn the order IDs with a ledger at provider and none at
// the earlier providers.
func (l *Ledger) scanProvider(ctx context.Context, provider string, earlier []string, fn func(string) error) error {
	k := keysOf(provider)
	prefix := k.orderLedger("")
	node, err := l.nodeOf(ctx, k.ledger())
	if err != nil {
		return fmt.Errorf("scanning the %s ledger: %w", provider, err)
	}
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, globEscape(prefix)+"*", scanCount).Result()
		if err != nil {
			return fmt.Errorf("scanning the %s ledger: %w", provider, err)
		}
		ids := make([]string, 0, len(keys))
		seen := make(map[string]bool, len(keys))
		for _, key := range keys {
			if id := strings.TrimPrefix(key, prefix); !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if ids, err = l.withoutEntriesAt(ctx, ids, earlier); err != nil {
			return fmt.Errorf("scanning the %s ledger: %w", provider, err)
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// withoutEntriesAt returns the IDs of ids that have no ledger entry at any
// of providers, checked in one pipelined round trip.
func (l *Ledger) withoutEntriesAt(ctx context.Context, ids, providers []string) ([]string, error) {
	if len(ids) == 0 || len(providers) == 0 {
		return ids, nil
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, 0, len(ids)*len(providers))
	for _, id := range ids {
		for _, p := range providers {
			// One EXISTS per key: the keys of different providers lie in
			// different cluster slots.
			cmds = append(cmds, pipe.Exists(ctx, keysOf(p).orderLedger(id)))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	kept := ids[:0]
	for i, id := range ids {
		found := false
		for _, cmd := range cmds[i*len(providers) : (i+1)*len(providers)] {
			found = found || cmd.Val() > 0
		}
		if !found {
			kept = append(kept, id)
		}
	}
	return kept, nil
}

// nodeOf returns the client to SCAN for key's slot: the cluster node that
// owns it, or the one server otherwise. Every key of one provider shares a
// hash tag, so one node holds them all.
func (l *Ledger) nodeOf(ctx context.Context, key string) (redis.Cmdable, error) {
	if c, ok := l.rdb.(*redis.ClusterClient); ok {
		return c.MasterForKey(ctx, key)
	}
	return l.rdb, nil
}

// globEscape escapes the characters special to Redis's glob-style MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
