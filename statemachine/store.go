package statemachine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// StoreConfig configures a Store.
type StoreConfig struct {
	// Retention is how long a finished instance (record and history) is
	// kept. Default 168h. Unfinished instances never expire.
	Retention time.Duration
	// Clock returns the current time. Default time.Now.
	Clock func() time.Time
	// DueFlushInterval is how often batched updates of the due index are
	// written. Default 5ms.
	DueFlushInterval time.Duration
	// IncarnationMemory is how long an ID's incarnation count outlives its
	// finished instance: an ID reused within Retention + IncarnationMemory
	// gets provider keys of its own (Instance.KeyPrefix). Set it to at
	// least how long the providers remember idempotency keys. Default 30
	// days.
	IncarnationMemory time.Duration
	// Durability says how sure a write must be before an effect follows it
	// or an instance is acknowledged. Default none.
	Durability Durability
	// Shards is how many shards the global indexes are split into (see
	// Shards). Every process on one Redis must use the same number
	// (ResolveShards). Default DefaultShards: 16 on a Redis Cluster, 1
	// otherwise.
	Shards int
	// CreateHook, when set, is called before each step of Create and stops
	// Create where it returns an error, as a crash there would (tests).
	// Default none.
	CreateHook func(CreateStep) error
}

// WithDefaults returns the config with its zero fields set.
func (c StoreConfig) WithDefaults() StoreConfig {
	c.Retention = cmp.Or(c.Retention, 168*time.Hour)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	c.DueFlushInterval = cmp.Or(c.DueFlushInterval, 5*time.Millisecond)
	c.IncarnationMemory = cmp.Or(c.IncarnationMemory, 30*24*time.Hour)
	c.Durability.Mode = cmpMode(c.Durability.Mode)
	c.Durability.Timeout = cmp.Or(c.Durability.Timeout, time.Second)
	return c
}

// Store persists workflow instances in Redis. Every change of an instance is
// one compare-and-set Lua script; see scripts/*.lua.
type Store struct {
	rdb redis.UniversalClient
	// cluster is rdb on a Redis Cluster, nil otherwise.
	cluster *redis.ClusterClient
	cfg     StoreConfig
	shards  Shards
	sc      *scripts
	due     *dueBatcher
	durabilityProbe
	// clockOffset is Redis's clock minus the store's, in ns; clockSynced
	// is when it was measured (Unix ns, 0 never).
	clockOffset, clockSynced atomic.Int64
	// incarnationTTL is IncarnationMemory in seconds, as the transition
	// script takes it.
	incarnationTTL string
}

// NewStore returns a store over rdb. Call Close to flush pending index
// updates.
func NewStore(rdb redis.UniversalClient, cfg StoreConfig) *Store {
	cfg = cfg.WithDefaults()
	if cfg.Shards == 0 {
		cfg.Shards = DefaultShards(rdb)
	}
	s := &Store{rdb: rdb, cfg: cfg, shards: NewShards(cfg.Shards), sc: loadScripts(),
		incarnationTTL: strconv.Itoa(int(cfg.IncarnationMemory / time.Second))}
	s.cluster, _ = rdb.(*redis.ClusterClient)
	s.due = newDueBatcher(rdb, s.shards, cfg.DueFlushInterval)
	return s
}

// Shards returns the layout of the store's global indexes.
func (s *Store) Shards() Shards { return s.shards }

// Close flushes batched index updates and stops the store's senders.
func (s *Store) Close() {
	s.due.close()
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Now returns the store's current time: its clock, corrected by the offset
// to the Redis server's clock that SyncClock last measured. Every time the
// store writes (lease ends, due times, retry times) is on the Redis clock,
// so the hosts' clocks may disagree without delaying anything.
func (s *Store) Now() time.Time { return s.cfg.Clock().Add(time.Duration(s.clockOffset.Load())) }

// SyncClock measures the offset of the store's clock to the Redis server's
// (TIME, halfway through the quickest of a few round trips), which Now
// applies from then on, and returns the Redis time. An offset within the
// measurement's own uncertainty (half the round trip, plus 2ms) is taken
// as none: on one host, or with synchronised clocks, Now is the local clock.
func (s *Store) SyncClock(ctx context.Context) (time.Time, error) {
	var best time.Duration = -1
	var redisAt time.Time
	var offset time.Duration
	for range 3 {
		before := s.cfg.Clock()
		t, err := s.rdb.Time(ctx).Result()
		if err != nil {
			return time.Time{}, fmt.Errorf("reading the Redis clock: %w", err)
		}
		rtt := s.cfg.Clock().Sub(before)
		if best < 0 || rtt < best {
			best, redisAt = rtt, t
			offset = t.Sub(before.Add(rtt / 2))
		}
	}
	if abs := max(offset, -offset); abs <= best/2+2*time.Millisecond {
		offset = 0
	}
	s.clockOffset.Store(int64(offset))
	s.clockSynced.Store(s.cfg.Clock().UnixNano())
	return redisAt, nil
}

// clockRefresh is how often EnsureClock measures the offset again.
const clockRefresh = 30 * time.Second

// EnsureClock measures the clock offset if it was never measured, or not
// for clockRefresh. A failure leaves the last offset in place.
func (s *Store) EnsureClock(ctx context.Context) {
	if last := s.clockSynced.Load(); last == 0 || s.cfg.Clock().Sub(time.Unix(0, last)) > clockRefresh {
		_, _ = s.SyncClock(ctx)
	}
}

// Retention returns how long finished instances are kept.
func (s *Store) Retention() time.Duration { return s.cfg.Retention }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Claim takes the lease on an instance until the given time (by the store's
// clock; Redis counts the same length from its own) and returns the
// instance. It fails with ErrNotFound, ErrTerminal or *LeasedError.
func (s *Store) Claim(ctx context.Context, id, token string, until time.Time) (*Instance, error) {
	var cmd *redis.Cmd
	err := s.pipelined(ctx, func(p redis.Pipeliner) {
		cmd = s.sc.claim.EvalSha(ctx, p, []string{RecordKey(id), HistoryKey(id)}, token, s.leaseMillis(until))
		s.dueAtLeaseEnd(ctx, p, id, until)
	})
	if err != nil {
		return nil, fmt.Errorf("claiming instance: %w", err)
	}
	res, err := cmd.Slice()
	if err != nil {
		return nil, fmt.Errorf("claiming instance: %w", err)
	}
	switch toString(res[0]) {
	case "missing":
		return nil, ErrNotFound
	case "terminal":
		return nil, ErrTerminal
	case "leased":
		return nil, &LeasedError{Until: fromMillis(toString(res[1]))}
	}
	flat, _ := res[1].([]any)
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		h[toString(flat[i])] = toString(flat[i+1])
	}
	return decodeInstance(id, h, toString(res[2])), nil
}

// dueAtLeaseEnd queues, in the same round trip as a lease is taken, the
// due-index entry that lets the reaper resume the instance if this worker
// dies holding it. It must not be batched: a crash before a batched flush
// would leave only the pickup deadline, far later than the lease. Written
// unconditionally, it is harmless when the lease is not granted: the reaper
// checks the record and moves the entry to the real lease's end.
//
// It only updates an entry (ZADD XX), never adds one: every running
// instance has an entry from its creation until it finishes, so a claim
// that comes after the instance finished (a late duplicate task) does not
// put a finished instance back into the index.
func (s *Store) dueAtLeaseEnd(ctx context.Context, p redis.Pipeliner, id string, until time.Time) {
	p.ZAddXX(ctx, s.shards.DueKey(s.shards.Of(id)), redis.Z{Score: float64(until.UnixMilli()), Member: id})
}

// leaseMillis turns a lease end on the store's clock into the length the
// scripts count from Redis's clock, at least 1 ms.
func (s *Store) leaseMillis(until time.Time) string {
	return strconv.FormatInt(max(until.Sub(s.Now()).Milliseconds(), 1), 10)
}

// LeaseMode says how a Change treats the engine's lease.
type LeaseMode string

// The lease modes of a Change.
const (
	// LeaseHold requires the change's token to hold the lease.
	LeaseHold LeaseMode = "hold"
	// LeaseAcquire takes a free or expired lease as part of the change.
	LeaseAcquire LeaseMode = "acquire"
	// LeaseIgnore neither checks nor needs the lease (signals).
	LeaseIgnore LeaseMode = "none"
)

// Change is one compare-and-set write of an instance.
type Change struct {
	ID string
	// ExpectState and ExpectRev are compared before anything is written.
	ExpectState string
	ExpectRev   int64
	// ExpectFingerprint, when set, must be the instance's input
	// fingerprint: a write made from a hint (a first task's) must be about
	// the instance the hint describes.
	ExpectFingerprint string
	Lease             LeaseMode
	Token             string
	// LeaseUntil is when the lease runs out after the write, by the store's
	// clock (Redis counts the same length from its own clock). The zero
	// time releases it; with KeepLease it is left as it is.
	LeaseUntil time.Time
	KeepLease  bool
	// Durable makes the write wait for the store's durability setting
	// (Durability) before Apply returns: set it on writes that an external
	// effect follows, such as the one that begins a step's attempt. When
	// the wait fails Apply returns ErrNotDurable and the effect must not
	// follow.
	Durable bool
	// State and Status are written; State may equal ExpectState.
	State  string
	Status Status
	// Event, when set, is appended to the history.
	Event *Event
	// Fields are extra record fields to write.
	Fields Fields
}

// Applied is the outcome of a successful Apply.
type Applied struct {
	Rev int64
	// Seq is the appended event's sequence number, or 0.
	Seq int64
	// Incarnation is the instance's incarnation (see Instance.Incarnation),
	// which a writer that knew the instance only from a hint learns here.
	Incarnation int
}

// Apply runs one compare-and-set. When the compare fails it returns a
// *StaleError (errors.Is ErrStale) describing where the instance is.
func (s *Store) Apply(ctx context.Context, c Change) (Applied, error) {
	now := s.Now()
	ev := ""
	if c.Event != nil {
		e := *c.Event
		if e.At.IsZero() {
			e.At = now
		}
		var err error
		if ev, err = encodeEvent(e); err != nil {
			return Applied{}, fmt.Errorf("encoding event: %w", err)
		}
	}
	ttl, notify := "0", ""
	if c.Status.Terminal() {
		ttl = strconv.Itoa(int(s.cfg.Retention / time.Second))
		if s.shards.N() == 1 {
			notify = FinishedChannel // published by the script itself
		}
	}
	lease := ""
	if !c.KeepLease {
		lease = "0"
		if !c.LeaseUntil.IsZero() {
			lease = s.leaseMillis(c.LeaseUntil)
		}
	}
	rev := c.ExpectRev + 1
	args := make([]any, 0, 19+len(c.Fields))
	args = append(args, c.ExpectState, strconv.FormatInt(c.ExpectRev, 10), string(c.Lease), c.Token,
		lease, ev, ttl, notify, c.ID, s.incarnationTTL, c.ExpectFingerprint,
		fieldState, c.State, fieldRev, rev, fieldUpdated, micros(now))
	if c.Status != StatusRunning {
		// Instances are created running; the status only changes at the end.
		args = append(args, fieldStatus, string(c.Status))
	}
	for _, f := range c.Fields {
		args = append(args, f)
	}
	keys := []string{RecordKey(c.ID), HistoryKey(c.ID), IncarnationKey(c.ID)}
	if c.Durable {
		if err := s.readyForDurable(ctx, keys[0]); err != nil {
			return Applied{}, fmt.Errorf("applying %s -> %s: %w", c.ExpectState, c.State, err)
		}
	}
	var cmd *redis.Cmd
	var rest func(p redis.Pipeliner)
	if c.Lease == LeaseAcquire && !c.LeaseUntil.IsZero() {
		rest = func(p redis.Pipeliner) { s.dueAtLeaseEnd(ctx, p, c.ID, c.LeaseUntil) }
	}
	durable, err := s.send(ctx, keys[0], c.Durable, func(p redis.Pipeliner) {
		cmd = s.sc.transition.EvalSha(ctx, p, keys, args...)
	}, rest)
	var res []any
	if err == nil {
		res, err = cmd.Slice()
	}
	if err != nil {
		return Applied{}, fmt.Errorf("applying %s -> %s: %w", c.ExpectState, c.State, err)
	}
	if toInt(res[0]) == 0 {
		return Applied{}, &StaleError{
			State: toString(res[1]), Rev: toInt(res[2]),
			LeaseToken: toString(res[3]), LeaseUntil: fromMillis(toString(res[4])),
		}
	}
	if c.Status.Terminal() {
		// A finished instance leaves the due index within the batcher's
		// interval; only after the write won, since a lost write says the
		// instance is still running.
		s.due.remove(c.ID)
		if notify == "" && len(res) > 4 && toInt(res[4]) == 1 {
			s.publishFinished(ctx, c.ID)
		}
	}
	a := Applied{Rev: rev, Seq: toInt(res[1])}
	if len(res) > 3 {
		a.Incarnation = int(max(toInt(res[3]), 1))
	}
	derr := durable.err()
	s.noteDurable(durable, derr)
	if err := derr; err != nil {
		return a, fmt.Errorf("applying %s -> %s: %w", c.ExpectState, c.State, err)
	}
	return a, nil
}

// Renew extends a lease its holder still holds. It returns false when the
// lease was lost. The due index keeps the end of the first lease: the reaper
// finds the lease renewed and looks again when it ends.
func (s *Store) Renew(ctx context.Context, id, token string, until time.Time) (bool, error) {
	var cmd *redis.Cmd
	err := s.pipelined(ctx, func(p redis.Pipeliner) {
		cmd = s.sc.renew.EvalSha(ctx, p, []string{RecordKey(id)}, token, s.leaseMillis(until))
	})
	n := 0
	if err == nil {
		n, err = cmd.Int()
	}
	if err != nil {
		return false, fmt.Errorf("renewing lease: %w", err)
	}
	return n == 1, nil
}

// Heartbeat records a long step's progress (JSON) and checkpoint (step
// results) and extends the lease its holder still holds, until the given
// time by the store's clock. It returns false when the lease was lost.
func (s *Store) Heartbeat(ctx context.Context, id, token string, until time.Time, progress string, checkpoint map[string]string) (bool, error) {
	args := []any{token, s.leaseMillis(until), progress}
	for _, k := range slices.Sorted(maps.Keys(checkpoint)) {
		args = append(args, prefixResult+k, checkpoint[k])
	}
	var cmd *redis.Cmd
	err := s.pipelined(ctx, func(p redis.Pipeliner) {
		cmd = s.sc.heartbeat.EvalSha(ctx, p, []string{RecordKey(id)}, args...)
	})
	n := 0
	if err == nil {
		n, err = cmd.Int()
	}
	if err != nil {
		return false, fmt.Errorf("recording heartbeat: %w", err)
	}
	return n == 1, nil
}

// Release gives up a lease without changing the instance.
func (s *Store) Release(ctx context.Context, id, token string) error {
	if err := s.pipelined(ctx, func(p redis.Pipeliner) {
		s.sc.release.EvalSha(ctx, p, []string{RecordKey(id)}, token)
	}); err != nil {
		return fmt.Errorf("releasing lease: %w", err)
	}
	return nil
}

// HandOff gives up a lease and, in the same round trip, sets the instance's
// due entry to dueAt, before the caller queues the task that carries the
// instance on (see ScheduleDue for why the order matters). A non-empty
// wakeQueue also announces the instance on that queue's wake list, after
// the release (see thenAnnounce).
func (s *Store) HandOff(ctx context.Context, id, token string, dueAt time.Time, wakeQueue string) error {
	k := s.shards.Of(id)
	var announce func(p redis.Pipeliner)
	if wakeQueue != "" {
		announce = func(p redis.Pipeliner) { s.wake(ctx, p, k, wakeQueue, id) }
	}
	if err := s.thenAnnounce(ctx, func(p redis.Pipeliner) {
		s.sc.release.EvalSha(ctx, p, []string{RecordKey(id)}, token)
		p.ZAdd(ctx, s.shards.DueKey(k), redis.Z{Score: float64(dueAt.UnixMilli()), Member: id})
	}, announce); err != nil {
		return fmt.Errorf("handing off: %w", err)
	}
	return nil
}

// thenAnnounce sends first's commands, then announce's (a wake list push;
// may be nil), which must not overtake them: a worker that takes the
// announcement at once must find the instance written or released. On one
// node a pipeline keeps the order; on a cluster, where the wake list and
// the record may live on different nodes, announce goes in a second round
// trip.
func (s *Store) thenAnnounce(ctx context.Context, first, announce func(p redis.Pipeliner)) error {
	if announce == nil {
		return s.pipelined(ctx, first)
	}
	if s.cluster == nil {
		return s.pipelined(ctx, func(p redis.Pipeliner) { first(p); announce(p) })
	}
	if err := s.pipelined(ctx, first); err != nil {
		return err
	}
	return s.pipelined(ctx, announce)
}

// Load reads an instance.
func (s *Store) Load(ctx context.Context, id string) (*Instance, error) {
	var h *redis.MapStringStringCmd
	var first *redis.StringCmd
	err := s.pipelined(ctx, func(p redis.Pipeliner) {
		h = p.HGetAll(ctx, RecordKey(id))
		first = p.LIndex(ctx, HistoryKey(id), 0)
	})
	if err != nil {
		return nil, fmt.Errorf("loading instance: %w", err)
	}
	m := h.Val()
	if len(m) == 0 {
		return nil, ErrNotFound
	}
	return decodeInstance(id, m, first.Val()), nil
}

// History returns an instance's events, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]Event, error) {
	var exists *redis.IntCmd
	var items *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, RecordKey(id))
		items = p.LRange(ctx, HistoryKey(id), 0, -1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("loading history: %w", err)
	}
	if exists.Val() == 0 {
		return nil, ErrNotFound
	}
	out := make([]Event, 0, len(items.Val()))
	for i, raw := range items.Val() {
		ev, err := decodeEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("decoding event %d: %w", i+1, err)
		}
		ev.Seq = i + 1
		out = append(out, ev)
	}
	return out, nil
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	case float64:
		return int64(x)
	}
	return 0
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
