package statemachine

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Summary is the little of an instance's record that an audit reads: a few
// fields instead of the whole record and its input.
type Summary struct {
	ID      string
	Status  Status
	State   string
	Created time.Time
	// KeyHash is the hash of the caller-scoped Idempotency-Key the instance
	// was created under, or "".
	KeyHash string
	// Incarnation is the instance's incarnation, 1 for the first (see
	// KeyPrefix).
	Incarnation int
}

// summaryFields are the record fields a Summary is read from, in the order
// decodeSummary expects them.
var summaryFields = []string{fieldStatus, fieldState, fieldCreated, fieldKeyHash, fieldIncarnation}

// ReadSummaries reads the summaries of instances in one round trip (one
// HMGET each). An instance whose record does not exist (it expired) comes
// back nil.
func ReadSummaries(ctx context.Context, rdb redis.Cmdable, ids []string) ([]*Summary, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	sent, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, RecordKey(id), summaryFields...)
		}
		return nil
	})
	if err := firstErr(sent, err); err != nil {
		return nil, fmt.Errorf("reading instances: %w", err)
	}
	out := make([]*Summary, len(ids))
	for i, id := range ids {
		out[i] = decodeSummary(id, cmds[i].Val())
	}
	return out, nil
}

// decodeSummary builds a Summary from the values of summaryFields; nil when
// the record has no status (it does not exist).
func decodeSummary(id string, v []any) *Summary {
	str := func(i int) string {
		if i >= len(v) {
			return ""
		}
		s, _ := v[i].(string)
		return s
	}
	if str(0) == "" {
		return nil
	}
	return &Summary{
		ID: id, Status: Status(str(0)), State: str(1), Created: fromMicros(str(2)),
		KeyHash: str(3), Incarnation: max(atoi(str(4)), 1),
	}
}
