package statemachine

import (
	"context"
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
	return readFields(ctx, rdb, ids, summaryFields, "instances", decodeSummary)
}

// decodeSummary builds a Summary from the values of summaryFields; nil when
// the record has no status (it does not exist).
func decodeSummary(id string, v fieldValues) *Summary {
	str := v.str
	if str(0) == "" {
		return nil
	}
	return &Summary{
		ID: id, Status: Status(str(0)), State: str(1), Created: fromMicros(str(2)),
		KeyHash: str(3), Incarnation: max(atoi(str(4)), 1),
	}
}
