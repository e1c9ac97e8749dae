package audit

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// Stream audits the orders and ledgers in rdb and hands each violation to
// emit as soon as it is found: first the per-order rules, in the order the
// orders were created, then the effects without an order, then the flow
// limits (with Config.Flow). It returns the
// report's counts, its Violations left empty. An error from emit stops the
// audit and is returned.
func Stream(ctx context.Context, rdb redis.UniversalClient, cfg Config, emit func(Violation) error) (*Report, error) {
	return stream(ctx, rdb, cfg, funcSink(emit))
}

// sink receives what an audit finds as it goes.
type sink interface {
	// violation receives one violation.
	violation(v Violation) error
	// checked is called after each batch.
	checked() error
}

// funcSink is a sink that only passes on violations.
type funcSink func(Violation) error

func (f funcSink) violation(v Violation) error { return f(v) }
func (f funcSink) checked() error              { return nil }

// auditor is one audit under way.
type auditor struct {
	rdb  redis.UniversalClient
	cfg  Config
	rep  *Report
	sink sink
	// orphans holds the orders already reported without a record: a scan
	// may meet an order once per provider, or twice in one provider.
	orphans map[string]bool
}

func stream(ctx context.Context, rdb redis.UniversalClient, cfg Config, s sink) (*Report, error) {
	cfg = cfg.withDefaults(rdb)
	a := &auditor{rdb: rdb, cfg: cfg, rep: newReport(cfg.Now), sink: s, orphans: map[string]bool{}}
	if err := a.walkOrders(ctx); err != nil {
		return nil, err
	}
	if err := a.walkLedgers(ctx); err != nil {
		return nil, err
	}
	if err := a.walkCalls(ctx); err != nil {
		return nil, err
	}
	return a.rep, nil
}

// walkOrders reads the order index, shard after shard, oldest first within
// each, one batch at a time, by (score, member) position, so that orders
// added meanwhile are met once and never shift the walk.
func (a *auditor) walkOrders(ctx context.Context) error {
	shards := statemachine.NewShards(a.cfg.Shards)
	for k := range shards.N() {
		if err := a.walkShard(ctx, shards.IndexKey(k)); err != nil {
			return err
		}
	}
	return nil
}

// walkShard is walkOrders over one shard of the index.
func (a *auditor) walkShard(ctx context.Context, key string) error {
	batch := int64(a.cfg.BatchSize)
	start, lastScore, lastID := "-inf", 0.0, ""
	var offset int64
	for {
		zs, err := a.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: key, Start: start, Stop: "+inf", ByScore: true, Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return fmt.Errorf("reading the order index: %w", err)
		}
		ids := make([]string, 0, len(zs))
		for _, z := range zs {
			id, _ := z.Member.(string)
			if lastID != "" && z.Score == lastScore && id <= lastID {
				continue // read by the previous batch
			}
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			if int64(len(zs)) < batch {
				return nil
			}
			offset += int64(len(zs)) // a whole batch of one score, all read
			continue
		}
		offset = 0
		if err := a.checkOrders(ctx, ids); err != nil {
			return err
		}
		last := zs[len(zs)-1]
		lastScore, lastID = last.Score, last.Member.(string)
		start = strconv.FormatFloat(lastScore, 'f', -1, 64)
		if int64(len(zs)) < batch {
			return nil
		}
	}
}

// checkOrders applies the per-order rules to one batch of orders: three
// round trips, for their records, their ledger entries and their
// Idempotency-Keys' bindings.
func (a *auditor) checkOrders(ctx context.Context, ids []string) error {
	sums, err := statemachine.ReadSummaries(ctx, a.rdb, ids)
	if err != nil {
		return fmt.Errorf("reading orders: %w", err)
	}
	live := make([]string, 0, len(ids))
	var keyHashes []string
	for _, s := range sums {
		if s == nil {
			continue // expired since it was indexed
		}
		live = append(live, s.ID)
		if s.KeyHash != "" {
			keyHashes = append(keyHashes, s.KeyHash)
		}
	}
	entries, err := a.cfg.Ledger.ForOrders(ctx, live)
	if err != nil {
		return fmt.Errorf("reading the ledgers: %w", err)
	}
	bound, err := statemachine.ReadBindings(ctx, a.rdb, keyHashes)
	if err != nil {
		return err
	}
	k := 0
	for _, s := range sums {
		if s == nil {
			continue
		}
		boundTo := ""
		if s.KeyHash != "" {
			boundTo, k = bound[k], k+1
		}
		for _, v := range a.checkOrder(s, entries[s.ID], boundTo) {
			if err := a.sink.violation(v); err != nil {
				return err
			}
		}
	}
	return a.sink.checked()
}

// walkLedgers scans the ledgers for orders that have effects, and reports
// those whose record does not exist, checking existence a batch at a time.
func (a *auditor) walkLedgers(ctx context.Context) error {
	pending := make([]string, 0, a.cfg.BatchSize)
	seen := map[string]bool{} // within the pending batch
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := a.checkOrphans(ctx, pending)
		pending, seen = pending[:0], map[string]bool{}
		return err
	}
	err := a.cfg.Ledger.ScanOrders(ctx, func(id string) error {
		if seen[id] || a.orphans[id] {
			return nil
		}
		seen[id] = true
		pending = append(pending, id)
		if len(pending) < a.cfg.BatchSize {
			return nil
		}
		return flush()
	})
	if err != nil {
		return fmt.Errorf("scanning the ledgers: %w", err)
	}
	return flush()
}

// checkOrphans reports the orders of ids that have no record, with their
// effects.
func (a *auditor) checkOrphans(ctx context.Context, ids []string) error {
	exists := make([]*redis.IntCmd, len(ids))
	if _, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			exists[i] = p.Exists(ctx, statemachine.RecordKey(id))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("checking orders: %w", err)
	}
	var missing []string
	for i, id := range ids {
		if exists[i].Val() == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return a.sink.checked()
	}
	entries, err := a.cfg.Ledger.ForOrders(ctx, missing)
	if err != nil {
		return fmt.Errorf("reading the ledgers: %w", err)
	}
	for _, id := range missing {
		a.orphans[id] = true
		for _, v := range a.checkOrphan(id, entries[id]) {
			if err := a.sink.violation(v); err != nil {
				return err
			}
		}
	}
	return a.sink.checked()
}

// count adds entries to the report's effect counts.
func (a *auditor) count(entries []providers.LedgerEntry) {
	for _, e := range entries {
		a.rep.Effects[e.Op]++
	}
}
