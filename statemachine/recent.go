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
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	sent, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, RecordKey(id), digestFields...)
		}
		return nil
	})
	if err := firstErr(sent, err); err != nil {
		return nil, fmt.Errorf("reading digests: %w", err)
	}
	out := make([]*Digest, len(ids))
	for i, id := range ids {
		out[i] = decodeDigest(id, cmds[i].Val())
	}
	return out, nil
}

// decodeDigest builds a Digest from the values of digestFields; nil when
// the record has no status (it does not exist).
func decodeDigest(id string, v []any) *Digest {
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
// first, in batches of up to 500 (one index read and one pipelined read of
// the records per batch). Entries whose record expired are skipped. An
// error from fn stops the scan and is returned.
func (s *Store) EachRecent(ctx context.Context, limit int, fn func([]*Digest) error) error {
	maxScore := "+inf"
	// seenAtMax counts the entries already read whose score is maxScore:
	// entries of one score come in a fixed order, and new instances are
	// scored later, so skipping that many resumes exactly where the last
	// batch ended.
	var seenAtMax int64
	for read := 0; read < limit; {
		batch := int64(min(recentBatch, limit-read))
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: IndexKey, Start: maxScore, Stop: "-inf", ByScore: true, Rev: true, Offset: seenAtMax, Count: batch,
		}).Result()
		if err != nil {
			return fmt.Errorf("reading list index: %w", err)
		}
		if len(zs) == 0 {
			return nil
		}
		read += len(zs)
		ids := make([]string, len(zs))
		for i, z := range zs {
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
		if int64(len(zs)) < batch {
			return nil
		}
		last := scoreString(zs[len(zs)-1])
		if last != maxScore {
			maxScore, seenAtMax = last, 0
		}
		for i := len(zs) - 1; i >= 0 && scoreString(zs[i]) == last; i-- {
			seenAtMax++
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
	return s.loadMany(ctx, zs)
}

// IndexSize returns how many instances the list index holds (expired ones
// included until they are trimmed).
func (s *Store) IndexSize(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, IndexKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("counting list index: %w", err)
	}
	return n, nil
}
