package statemachine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// TrimCursor is where TrimIndex goes on from: a shard of the list index and
// a score (µs) in it. The zero value starts at the oldest entry of shard 0.
type TrimCursor struct {
	Shard int
	After int64
}

// TrimIndex removes from the list index the entries of instances that no
// longer exist (finished instances expire after the retention). It looks at
// up to limit entries of the cursor's shard created before olderThan and
// after the cursor's score, and returns the cursor to continue from (the
// next shard once it reached the end of this one: the zero cursor again
// after the last) and how many entries it removed.
func (s *Store) TrimIndex(ctx context.Context, olderThan time.Time, c TrimCursor, limit int64) (next TrimCursor, removed int, err error) {
	k := c.Shard % s.shards.N()
	key := s.shards.IndexKey(k)
	zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: key, Start: "(" + strconv.FormatInt(c.After, 10), Stop: strconv.FormatInt(olderThan.UnixMicro(), 10),
		ByScore: true, Count: limit,
	}).Result()
	if err != nil {
		return c, 0, fmt.Errorf("reading list index: %w", err)
	}
	endOfShard := TrimCursor{Shard: (k + 1) % s.shards.N()}
	if len(zs) == 0 {
		return endOfShard, 0, nil
	}
	exists := make([]*redis.IntCmd, len(zs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			exists[i] = p.Exists(ctx, RecordKey(z.Member.(string)))
		}
		return nil
	}); err != nil {
		return c, 0, fmt.Errorf("checking instances: %w", err)
	}
	var gone []any
	for i, z := range zs {
		if exists[i].Val() == 0 {
			gone = append(gone, z.Member)
		}
	}
	if len(gone) > 0 {
		if err := s.rdb.ZRem(ctx, key, gone...).Err(); err != nil {
			return c, 0, fmt.Errorf("trimming list index: %w", err)
		}
	}
	next = TrimCursor{Shard: k, After: int64(zs[len(zs)-1].Score)}
	if int64(len(zs)) < limit {
		next = endOfShard
	}
	return next, len(gone), nil
}
