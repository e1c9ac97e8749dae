package statemachine

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// readFields reads the named fields of each instance's record in one round
// trip (one HMGET each) and decodes each reply with decode, which returns
// nil for a record that does not exist. what names the read in errors.
func readFields[T any](ctx context.Context, rdb redis.Cmdable, ids, fields []string, what string, decode func(id string, v fieldValues) *T) ([]*T, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	sent, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, RecordKey(id), fields...)
		}
		return nil
	})
	if err := firstErr(sent, err); err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	out := make([]*T, len(ids))
	for i, id := range ids {
		out[i] = decode(id, cmds[i].Val())
	}
	return out, nil
}

// fieldValues is an HMGET reply.
type fieldValues []any

// str returns the i-th value, "" when it is missing.
func (v fieldValues) str(i int) string {
	if i >= len(v) {
		return ""
	}
	s, _ := v[i].(string)
	return s
}
