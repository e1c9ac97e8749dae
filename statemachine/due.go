package statemachine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The due index (Shards.DueKey, one sorted set per shard) holds every
// unfinished instance with the time at which the reaper must look at it if
// nothing else has: the end of its lease, a retry, or a pickup deadline. It
// is a safety net, so its updates are batched: many instances' updates go
// out as one ZADD and one ZREM per shard. A batch lost in a crash only makes
// the reaper look at an instance sooner or later than needed; the reaper
// always checks the record before acting.

// dueBatcher collects due-index updates and writes them every interval.
type dueBatcher struct {
	rdb      redis.UniversalClient
	shards   Shards
	interval time.Duration

	mu      sync.Mutex
	flushMu sync.Mutex // one flush at a time, so FlushDue waits for a running one
	adds    map[string]int64
	removes map[string]struct{}
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newDueBatcher(rdb redis.UniversalClient, shards Shards, interval time.Duration) *dueBatcher {
	b := &dueBatcher{
		rdb: rdb, shards: shards, interval: interval,
		adds: map[string]int64{}, removes: map[string]struct{}{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	go b.run()
	return b
}

func (b *dueBatcher) set(id string, at time.Time) {
	b.mu.Lock()
	if _, gone := b.removes[id]; !gone {
		b.adds[id] = at.UnixMilli()
	}
	b.mu.Unlock()
	b.wake()
}

func (b *dueBatcher) remove(id string) {
	b.mu.Lock()
	delete(b.adds, id)
	b.removes[id] = struct{}{}
	b.mu.Unlock()
	b.wake()
}

func (b *dueBatcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *dueBatcher) run() {
	defer close(b.stopped)
	for {
		select {
		case <-b.done:
			b.flush()
			return
		case <-b.kick:
		}
		// Let a batch gather before writing it.
		select {
		case <-b.done:
			b.flush()
			return
		case <-time.After(b.interval):
		}
		b.flush()
	}
}

func (b *dueBatcher) flush() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	adds, removes := b.adds, b.removes
	b.adds, b.removes = map[string]int64{}, map[string]struct{}{}
	b.mu.Unlock()
	if len(adds) == 0 && len(removes) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		zs := make(map[int][]redis.Z)
		for id, at := range adds {
			k := b.shards.Of(id)
			zs[k] = append(zs[k], redis.Z{Score: float64(at), Member: id})
		}
		for k, z := range zs {
			p.ZAdd(ctx, b.shards.DueKey(k), z...)
		}
		ms := make(map[int][]any)
		for id := range removes {
			k := b.shards.Of(id)
			ms[k] = append(ms[k], id)
		}
		for k, m := range ms {
			p.ZRem(ctx, b.shards.DueKey(k), m...)
		}
		return nil
	})
	if err == nil {
		return
	}
	// Keep what failed for the next flush, unless newer updates replaced it.
	b.mu.Lock()
	for id, at := range adds {
		if _, newer := b.adds[id]; !newer {
			if _, gone := b.removes[id]; !gone {
				b.adds[id] = at
			}
		}
	}
	for id := range removes {
		if _, newer := b.adds[id]; !newer {
			b.removes[id] = struct{}{}
		}
	}
	b.mu.Unlock()
	select {
	case <-b.done:
	case <-time.After(100 * time.Millisecond):
		b.wake()
	}
}

func (b *dueBatcher) close() {
	b.once.Do(func() { close(b.done) })
	<-b.stopped
}

// SetDue asks the reaper to look at an instance at the given time. The write
// is batched.
func (s *Store) SetDue(id string, at time.Time) { s.due.set(id, at) }

// ForgetDue takes an instance out of the due index. The write is batched.
func (s *Store) ForgetDue(id string) { s.due.remove(id) }

// FlushDue writes the batched due-index updates now (tests, shutdown).
func (s *Store) FlushDue() { s.due.flush() }

// DueEntry is one instance the reaper should look at.
type DueEntry struct {
	ID string
	// At is the entry's score, Unix ms, needed to claim it.
	At int64
}

// DueBefore returns instances due at or before t: up to limit in all,
// taken from every shard (at most limit/N + 1 from each), in one round
// trip.
func (s *Store) DueBefore(ctx context.Context, t time.Time, limit int64) ([]DueEntry, error) {
	n := s.shards.N()
	per := limit
	if n > 1 {
		per = max(limit/int64(n)+1, 16)
	}
	cmds := make([]*redis.ZSliceCmd, n)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range n {
			cmds[k] = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
				Key: s.shards.DueKey(k), Start: "-inf", Stop: fmt.Sprint(t.UnixMilli()), ByScore: true, Count: per,
			})
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading due index: %w", err)
	}
	var out []DueEntry
	for _, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			out = append(out, DueEntry{ID: id, At: int64(z.Score)})
		}
	}
	if int64(len(out)) > limit {
		out = out[:limit]
	}
	return out, nil
}

// ClaimDue moves a due entry to next if its score is still e.At, so that only
// one reaper acts on it. It reports whether this caller won.
func (s *Store) ClaimDue(ctx context.Context, e DueEntry, next time.Time) (bool, error) {
	n, err := s.sc.dueClaim.Run(ctx, s.rdb, []string{s.shards.DueKey(s.shards.Of(e.ID))}, e.ID, e.At, next.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("claiming due entry: %w", err)
	}
	return n == 1, nil
}

// RemoveDue removes an entry from the due index now.
func (s *Store) RemoveDue(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, s.shards.DueKey(s.shards.Of(id)), id).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("removing due entry: %w", err)
	}
	return nil
}

// ScheduleDue writes an instance's due entry now, in its own round trip.
// The engine calls it before it queues a task for the instance (a retry, a
// handoff, a re-drive): a worker that takes the task afterwards writes its
// lease end after this, so a stale, later time never overwrites a fresher
// lease end. A non-empty wakeQueue also announces the instance on that
// queue's wake list, in the same round trip.
func (s *Store) ScheduleDue(ctx context.Context, id string, at time.Time, wakeQueue string) error {
	k := s.shards.Of(id)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.shards.DueKey(k), redis.Z{Score: float64(at.UnixMilli()), Member: id})
		if wakeQueue != "" {
			s.wake(ctx, p, k, wakeQueue, id)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("writing due entry: %w", err)
	}
	return nil
}

// RedisNow returns the Redis server's clock, which judges every lease
// (see claim.lua). The reaper compares leases with it rather than with its
// host's clock. It does not change the store's clock offset (SyncClock
// does).
func (s *Store) RedisNow(ctx context.Context) (time.Time, error) {
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the Redis clock: %w", err)
	}
	return t, nil
}

// Park records that an instance's step was dead-lettered at the given time:
// it joins the dead-letter index, and its due entry moves to recheck (the
// instance stays in the due index while it runs, so the reaper still looks
// at it now and then).
func (s *Store) Park(ctx context.Context, id string, at, recheck time.Time) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		k := s.shards.Of(id)
		p.ZAdd(ctx, s.shards.DeadLetterKey(k), redis.Z{Score: float64(at.UnixMilli()), Member: id})
		p.ZAdd(ctx, s.shards.DueKey(k), redis.Z{Score: float64(recheck.UnixMilli()), Member: id})
		return nil
	})
	if err != nil {
		return fmt.Errorf("parking instance: %w", err)
	}
	return nil
}

// Unpark takes an instance out of the dead-letter index.
func (s *Store) Unpark(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, s.shards.DeadLetterKey(s.shards.Of(id)), id).Err(); err != nil {
		return fmt.Errorf("unparking instance: %w", err)
	}
	return nil
}

// Parked reports whether an instance is in the dead-letter index.
func (s *Store) Parked(ctx context.Context, id string) (bool, error) {
	_, err := s.rdb.ZScore(ctx, s.shards.DeadLetterKey(s.shards.Of(id)), id).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading the dead-letter index: %w", err)
	}
	return true, nil
}

// DeadLetters returns how many instances have a parked step.
func (s *Store) DeadLetters(ctx context.Context) (int64, error) {
	cmds := make([]*redis.IntCmd, s.shards.N())
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range cmds {
			cmds[k] = p.ZCard(ctx, s.shards.DeadLetterKey(k))
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("counting dead letters: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// ClaimDueBatch is ClaimDue for many entries in one round trip. It reports,
// entry by entry, whether this caller won it.
func (s *Store) ClaimDueBatch(ctx context.Context, entries []DueEntry, next time.Time) ([]bool, error) {
	cmds := make([]*redis.Cmd, len(entries))
	err := s.pipelined(ctx, func(p redis.Pipeliner) {
		for i, e := range entries {
			cmds[i] = s.sc.dueClaim.EvalSha(ctx, p, []string{s.shards.DueKey(s.shards.Of(e.ID))}, e.ID, e.At, next.UnixMilli())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("claiming due entries: %w", err)
	}
	won := make([]bool, len(entries))
	for i, c := range cmds {
		n, _ := c.Int()
		won[i] = n == 1
	}
	return won, nil
}

// peekFields are the record fields the reaper needs to judge an instance.
var peekFields = []string{fieldWorkflow, fieldVersion, fieldState, fieldStatus, fieldRev, fieldLeaseToken, fieldLeaseUntil,
	fieldNextAt, fieldTask, fieldDeadLetter, fieldPriority}

// Peek reads the state, lease, retry time, task and parking of many
// instances in one round trip, without their input and step data. A
// missing instance comes back nil.
func (s *Store) Peek(ctx context.Context, ids []string) ([]*Instance, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, RecordKey(id), peekFields...)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("peeking at instances: %w", err)
	}
	out := make([]*Instance, len(ids))
	for i, id := range ids {
		vals := cmds[i].Val()
		h := make(map[string]string, len(peekFields))
		for j, f := range peekFields {
			if j < len(vals) {
				if v, ok := vals[j].(string); ok {
					h[f] = v
				}
			}
		}
		if h[fieldStatus] == "" {
			continue
		}
		out[i] = decodeInstance(id, h, "")
	}
	return out, nil
}

// DueUpdate is one correction the reaper makes to the due index: a new
// time, or, with the zero At, a removal.
type DueUpdate struct {
	ID string
	At time.Time
}

// UpdateDue applies the reaper's corrections in one round trip.
func (s *Store) UpdateDue(ctx context.Context, updates []DueUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		zs := map[int][]redis.Z{}
		gone := map[int][]any{}
		for _, u := range updates {
			k := s.shards.Of(u.ID)
			if u.At.IsZero() {
				gone[k] = append(gone[k], u.ID)
			} else {
				zs[k] = append(zs[k], redis.Z{Score: float64(u.At.UnixMilli()), Member: u.ID})
			}
		}
		for k, z := range zs {
			p.ZAdd(ctx, s.shards.DueKey(k), z...)
		}
		for k, g := range gone {
			p.ZRem(ctx, s.shards.DueKey(k), g...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("updating due entries: %w", err)
	}
	return nil
}

// DueStats returns how many entries the due index holds (every shard) and
// the time of the oldest (the zero time when it is empty).
func (s *Store) DueStats(ctx context.Context) (int64, time.Time, error) {
	n := s.shards.N()
	cards := make([]*redis.IntCmd, n)
	heads := make([]*redis.ZSliceCmd, n)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range n {
			cards[k] = p.ZCard(ctx, s.shards.DueKey(k))
			heads[k] = p.ZRangeWithScores(ctx, s.shards.DueKey(k), 0, 0)
		}
		return nil
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("reading due index stats: %w", err)
	}
	var total int64
	var oldest time.Time
	for k := range n {
		total += cards[k].Val()
		if zs := heads[k].Val(); len(zs) > 0 {
			if at := time.UnixMilli(int64(zs[0].Score)); oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
	}
	return total, oldest, nil
}
