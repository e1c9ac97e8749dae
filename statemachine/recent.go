package statemachine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Digest is the little of an instance that a dashboard counts and watches
// for changes: a few fields of its record, without its input, steps or
// history.
type Digest struct {
	ID       string
	Workflow string
	Version  int
	Status   Status
	State    string
	Priority Priority
	Created  time.Time
	Updated  time.Time
	// Rev grows with every transition, step failure and signal; Progress
	// changes with every heartbeat of a long step. Together they say
	// whether an instance changed.
	Rev      int64
	Progress string
}

// digestFields are the record fields a Digest is read from, in the order
// decodeDigest expects them.
var digestFields = []string{fieldStatus, fieldWorkflow, fieldVersion, fieldState, fieldPriority, fieldCreated, fieldUpdated, fieldRev, fieldProgress}

// Digests reads the digests of instances in one round trip (one HMGET
// each). An instance whose record does not exist comes back nil.
func (s *Store) Digests(ctx context.Context, ids []string) ([]*Digest, error) {
	return readFields(ctx, s.rdb, ids, digestFields, "digests", decodeDigest)
}

// decodeDigest builds a Digest from the values of digestFields; nil when
// the record has no status (it does not exist).
func decodeDigest(id string, v fieldValues) *Digest {
	str := v.str
	if str(0) == "" {
		return nil
	}
	prio, err := ParsePriority(str(4))
	if err != nil {
		prio = PriorityNormal
	}
	return &Digest{
		ID: id, Status: Status(str(0)), Workflow: str(1), Version: atoi(str(2)), State: str(3), Priority: prio,
		Created: fromMicros(str(5)), Updated: fromMicros(str(6)), Rev: int64(atoi(str(7))), Progress: str(8),
	}
}

// recentBatch is how many index entries one round trip of EachRecent reads.
const recentBatch = 500

// EachRecent calls fn with the digests of up to limit instances, newest
// first across the index's shards, in batches of up to 500 (one read of
// the index shards and one pipelined read of the records per batch).
// Entries whose record does not exist are skipped. An error from fn stops
// the scan and is returned.
func (s *Store) EachRecent(ctx context.Context, limit int, fn func([]*Digest) error) error {
	r := newMergeReader(s, s.shards.IndexKey, min(limit, recentBatch))
	maxScore, afterID := "+inf", ""
	for read := 0; read < limit; {
		page, more, _, err := r.next(ctx, maxScore, afterID, min(recentBatch, limit-read))
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		page = page[:min(len(page), limit-read)]
		read += len(page)
		ids := make([]string, len(page))
		for i, z := range page {
			ids[i], _ = z.Member.(string)
		}
		ds, err := s.Digests(ctx, ids)
		if err != nil {
			return err
		}
		live := ds[:0]
		for _, d := range ds {
			if d != nil {
				live = append(live, d)
			}
		}
		if err := fn(live); err != nil {
			return err
		}
		last := page[len(page)-1]
		maxScore, afterID = scoreString(last), last.Member.(string)
		if !more {
			return nil // every shard was read to its end
		}
	}
	return nil
}

// LoadMany reads whole instances in one round trip; an instance that does
// not exist comes back nil.
func (s *Store) LoadMany(ctx context.Context, ids []string) ([]*Instance, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	zs := make([]redis.Z, len(ids))
	for i, id := range ids {
		zs[i] = redis.Z{Member: id}
	}
	out, _, err := s.readMany(ctx, zs)
	return out, err
}

// IndexSize returns how many instances the list index holds, over all its
// shards (expired ones included until they are trimmed).
func (s *Store) IndexSize(ctx context.Context) (int64, error) {
	cmds := make([]*redis.IntCmd, s.shards.N())
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range cmds {
			cmds[k] = p.ZCard(ctx, s.shards.IndexKey(k))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("counting list index: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
