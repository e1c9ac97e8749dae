package statemachine

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// TrimIndex removes from the list index the entries of instances that no
// longer exist (finished instances expire after the retention). It looks at
// up to limit entries created before olderThan and after the score cursor
// (µs; 0 starts at the oldest), and returns the cursor to continue from, 0
// once it reached the end, and how many entries it removed.
func (s *Store) TrimIndex(ctx context.Context, olderThan time.Time, cursor int64, limit int64) (next int64, removed int, err error) {
	zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
		Key: IndexKey, Start: "(" + strconv.FormatInt(cursor, 10), Stop: strconv.FormatInt(olderThan.UnixMicro(), 10),
		ByScore: true, Count: limit,
	}).Result()
	if err != nil {
		return cursor, 0, fmt.Errorf("reading list index: %w", err)
	}
	if len(zs) == 0 {
		return 0, 0, nil
	}
	exists := make([]*redis.IntCmd, len(zs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			exists[i] = p.Exists(ctx, RecordKey(z.Member.(string)))
		}
		return nil
	}); err != nil {
		return cursor, 0, fmt.Errorf("checking instances: %w", err)
	}
	var gone []any
	for i, z := range zs {
		if exists[i].Val() == 0 {
			gone = append(gone, z.Member)
		}
	}
	if len(gone) > 0 {
		if err := s.rdb.ZRem(ctx, IndexKey, gone...).Err(); err != nil {
			return cursor, 0, fmt.Errorf("trimming list index: %w", err)
		}
	}
	next = int64(zs[len(zs)-1].Score)
	if int64(len(zs)) < limit {
		next = 0
	}
	return next, len(gone), nil
}
