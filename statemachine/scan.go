package statemachine

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// scanBatch is how many instances one round trip of Running reads.
const scanBatch = 500

// Running calls fn with every unfinished instance of workflow name at
// version, reading the list index in batches, shard after shard, oldest
// first within each (fn sees the fields the reaper reads; Load the instance
// for the rest). An error from fn stops the scan.
func (s *Store) Running(ctx context.Context, name string, version int, fn func(*Instance) error) error {
	for k := range s.shards.N() {
		if err := s.runningIn(ctx, s.shards.IndexKey(k), name, version, fn); err != nil {
			return err
		}
	}
	return nil
}

// runningIn is Running over one shard of the list index.
func (s *Store) runningIn(ctx context.Context, key, name string, version int, fn func(*Instance) error) error {
	after := "-inf"
	for {
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: key, Start: after, Stop: "+inf", ByScore: true, Count: scanBatch,
		}).Result()
		if err != nil {
			return fmt.Errorf("reading the list index: %w", err)
		}
		if len(zs) == 0 {
			return nil
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i], _ = z.Member.(string)
		}
		insts, err := s.Peek(ctx, ids)
		if err != nil {
			return err
		}
		for _, in := range insts {
			if in == nil || in.Status.Terminal() || in.Workflow != name || in.Version != version {
				continue
			}
			if err := fn(in); err != nil {
				return err
			}
		}
		if len(zs) < scanBatch {
			return nil
		}
		// Entries share a score only within one microsecond; go on from
		// the last one's (a few of those may be seen twice, never missed),
		// past it when a whole batch shares it.
		last := int64(zs[len(zs)-1].Score)
		if int64(zs[0].Score) == last {
			after = "(" + strconv.FormatInt(last, 10)
		} else {
			after = strconv.FormatInt(last, 10)
		}
	}
}
