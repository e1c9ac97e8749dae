package statemachine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// The store conformance suite. Every test runs through redistest.Each, once
// on miniredis and once on a real redis-server, each with its own server.

// storeEpoch is where every store test's clock starts: whole seconds, so
// that the millisecond and microsecond round trips of the store are exact.
var storeEpoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testRetention is the Retention of the stores under test.
const testRetention = 90 * time.Minute

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock on by d and returns the new time.
func (c *testClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// storeBundle is a store over one isolated Redis, with a hand-moved clock.
type storeBundle struct {
	r     *redistest.Instance
	rdb   redis.UniversalClient
	store *Store
	clock *testClock
	def   *Definition
}

// setupStore returns a bundle whose store flushes the due index only when
// told to (FlushDue), so that tests see exactly when its writes land.
func setupStore(t *testing.T, r *redistest.Instance) *storeBundle {
	t.Helper()
	return setupStoreConfig(t, r, StoreConfig{DueFlushInterval: time.Hour})
}

// setupStoreConfig is setupStore with a config; its Retention and Clock are
// set for the test.
func setupStoreConfig(t *testing.T, r *redistest.Instance, cfg StoreConfig) *storeBundle {
	t.Helper()
	clock := &testClock{now: storeEpoch}
	cfg.Retention, cfg.Clock = testRetention, clock.Now
	rdb := r.Client(t)
	store := NewStore(rdb, cfg)
	t.Cleanup(store.Close) // before the client closes: cleanups run last in, first out
	return &storeBundle{r: r, rdb: rdb, store: store, clock: clock, def: compiledOrderV1(t)}
}

// eachStore runs f on every backend, each with a fresh bundle.
func eachStore(t *testing.T, f func(t *testing.T, b *storeBundle)) {
	t.Helper()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) { f(t, setupStore(t, r)) })
}

// input is the test input of instance id, as JSON.
func input(id string) []byte { return []byte(`{"order":"` + id + `","amount_cents":1999}`) }

// newInstance describes instance id as the tests create it: its task queued,
// due in a minute.
func (b *storeBundle) newInstance(id string) NewInstance {
	return NewInstance{
		ID: id, Definition: b.def, Fingerprint: "fp:" + id, Input: input(id), Task: "task:" + id,
		Due: b.clock.Now().Add(time.Minute),
	}
}

// createWith runs Create, which must not fail.
func (b *storeBundle) createWith(t *testing.T, n NewInstance) CreateResult {
	t.Helper()
	res, err := b.store.Create(t.Context(), n)
	require.NoError(t, err)
	return res
}

// create creates instance id, due in a minute.
func (b *storeBundle) create(t *testing.T, id string) CreateResult {
	t.Helper()
	return b.createWith(t, b.newInstance(id))
}

// createDue creates instance id, due at due.
func (b *storeBundle) createDue(t *testing.T, id string, due time.Time) CreateResult {
	t.Helper()
	n := b.newInstance(id)
	n.Due = due
	return b.createWith(t, n)
}

// start creates instance id, which must be new, due in a minute, and loads
// it.
func (b *storeBundle) start(t *testing.T, id string) *Instance {
	t.Helper()
	require.True(t, b.create(t, id).Created, "instance %s already exists", id)
	return b.load(t, id)
}

// load reads instance id.
func (b *storeBundle) load(t *testing.T, id string) *Instance {
	t.Helper()
	in, err := b.store.Load(t.Context(), id)
	require.NoError(t, err)
	return in
}

// transition returns the change that fires event from where in is, without
// touching the lease.
func (b *storeBundle) transition(t *testing.T, in *Instance, event string) Change {
	t.Helper()
	dst, err := b.def.Destination(in.State, event)
	require.NoError(t, err)
	s, _ := b.def.State(dst)
	return Change{
		ID: in.ID, ExpectState: in.State, ExpectRev: in.Rev, Lease: LeaseIgnore, KeepLease: true,
		State: dst, Status: s.Status,
		Event: &Event{Type: EventTransition, Event: event, From: in.State, To: dst},
	}
}

// apply applies c, which must succeed.
func (b *storeBundle) apply(t *testing.T, c Change) Applied {
	t.Helper()
	res, err := b.store.Apply(t.Context(), c)
	require.NoError(t, err)
	return res
}

// fire fires events one after the other from where instance id is and
// returns it reloaded.
func (b *storeBundle) fire(t *testing.T, id string, events ...string) *Instance {
	t.Helper()
	in := b.load(t, id)
	for _, ev := range events {
		b.apply(t, b.transition(t, in, ev))
		in = b.load(t, id)
	}
	return in
}

// rawInstance is what Redis holds for one instance, read around the store.
type rawInstance struct {
	Record  map[string]string
	History []string
}

func (b *storeBundle) raw(t *testing.T, id string) rawInstance {
	t.Helper()
	rec, err := b.rdb.HGetAll(t.Context(), RecordKey(id)).Result()
	require.NoError(t, err)
	hist, err := b.rdb.LRange(t.Context(), HistoryKey(id), 0, -1).Result()
	require.NoError(t, err)
	return rawInstance{Record: rec, History: hist}
}

// ttl returns the time to live of key, 0 when it has none.
func (b *storeBundle) ttl(t *testing.T, key string) time.Duration {
	t.Helper()
	if b.r.Mini != nil {
		return b.r.Mini.TTL(key) // miniredis TTLs do not run down
	}
	d, err := b.rdb.PTTL(t.Context(), key).Result()
	require.NoError(t, err)
	return max(d, 0) // -1: no TTL, -2: no key
}

// requireTTL checks the TTL of key: exactly want on miniredis, within a
// second below it on a real server, whose TTLs run down.
func (b *storeBundle) requireTTL(t *testing.T, key string, want time.Duration) {
	t.Helper()
	got := b.ttl(t, key)
	if b.r.Mini != nil || want == 0 {
		require.Equal(t, want, got, "TTL of %s", key)
		return
	}
	require.LessOrEqual(t, got, want, "TTL of %s", key)
	require.Greater(t, got, want-time.Second, "TTL of %s", key)
}

// requireNoKeys checks that none of keys exists.
func (b *storeBundle) requireNoKeys(t *testing.T, msg string, keys ...string) {
	t.Helper()
	n, err := b.rdb.Exists(t.Context(), keys...).Result()
	require.NoError(t, err)
	require.Zero(t, n, msg)
}

// claim takes the lease on instance id for token until the given time; it
// must be granted.
func (b *storeBundle) claim(t *testing.T, id, token string, until time.Time) *Instance {
	t.Helper()
	in, err := b.store.Claim(t.Context(), id, token, until)
	require.NoError(t, err, "claiming %s for %s", id, token)
	return in
}

// redisNow reads the Redis server's clock, by which leases are judged.
func (b *storeBundle) redisNow(t *testing.T) time.Time {
	t.Helper()
	now, err := b.store.RedisNow(t.Context())
	require.NoError(t, err)
	return now
}

// requireLeaseFor checks that a lease end read from Redis is about d from
// now on the Redis clock: the store sends a lease's length, which Redis
// counts from its own clock, not the test's.
func (b *storeBundle) requireLeaseFor(t *testing.T, d time.Duration, got time.Time, msgAndArgs ...any) {
	t.Helper()
	want := b.redisNow(t).Add(d)
	require.WithinRange(t, got, want.Add(-10*time.Second), want.Add(time.Millisecond), msgAndArgs...)
}

// waitLeaseOver waits until the Redis clock passes the lease of instance id.
func (b *storeBundle) waitLeaseOver(t *testing.T, id string) {
	t.Helper()
	until := b.load(t, id).LeaseUntil
	require.Eventually(t, func() bool { return b.redisNow(t).After(until) }, 5*time.Second, time.Millisecond)
}

// score returns the score of id in the sorted set key, or -1 when it is not
// in it.
func (b *storeBundle) score(t *testing.T, key, id string) int64 {
	t.Helper()
	score, err := b.rdb.ZScore(t.Context(), key, id).Result()
	if errors.Is(err, redis.Nil) {
		return -1
	}
	require.NoError(t, err)
	return int64(score)
}

// wakeHead returns the ID at the head of the wake list, the next an idle
// worker takes.
func (b *storeBundle) wakeHead(t *testing.T) string {
	t.Helper()
	id, err := b.rdb.LIndex(t.Context(), WakeKey(DefaultQueue), 0).Result()
	require.NoError(t, err)
	return id
}

// concurrently runs f(0) ... f(n-1) in n goroutines released at once and
// returns their results in order. f runs off the test goroutine: it reports
// failures in its result, not through require.
func concurrently[T any](n int, f func(i int) T) []T {
	out := make([]T, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-ready
			out[i] = f(i)
		})
	}
	close(ready)
	wg.Wait()
	return out
}

// requireStale checks that err is a *StaleError (errors.Is ErrStale) saying
// the instance is in state at rev.
func requireStale(t *testing.T, err error, state string, rev int64) *StaleError {
	t.Helper()
	require.ErrorIs(t, err, ErrStale)
	var stale *StaleError
	require.ErrorAs(t, err, &stale)
	require.Equal(t, state, stale.State, "stale state")
	require.Equal(t, rev, stale.Rev, "stale revision")
	return stale
}

func TestStoreConfigWithDefaults(t *testing.T) {
	t.Parallel()
	cfg := StoreConfig{}.WithDefaults()
	require.Equal(t, 168*time.Hour, cfg.Retention)
	require.Equal(t, 5*time.Millisecond, cfg.DueFlushInterval)
	require.NotNil(t, cfg.Clock)

	clock := &testClock{now: storeEpoch}
	cfg = StoreConfig{Retention: time.Hour, Clock: clock.Now, DueFlushInterval: time.Second}.WithDefaults()
	require.Equal(t, time.Hour, cfg.Retention)
	require.Equal(t, time.Second, cfg.DueFlushInterval)
	require.Equal(t, storeEpoch, cfg.Clock())
}

func TestStoreCreate(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		created := b.clock.Now()
		res := b.create(t, "o1")
		require.Equal(t, CreateResult{Created: true, Rev: 1, State: OrderPending, CreatedAt: created, Version: 1, Incarnation: 1}, res)

		in := b.load(t, "o1")
		require.Equal(t, &Instance{
			ID: "o1", Workflow: OrderWorkflow, Version: 1, State: OrderPending, Status: StatusRunning,
			Rev: 1, Created: created, Updated: created, Fingerprint: "fp:o1", Task: "task:o1", Incarnation: 1, Priority: PriorityNormal,
			Signals: map[string]bool{}, Attempts: map[string]int{}, Declined: map[string]bool{}, Policies: StepPolicies(b.def), Results: map[string]string{},
			Input: input("o1"),
		}, in, "a created instance is visible at once")

		b.clock.Add(time.Second)
		again := b.create(t, "o1")
		require.Equal(t, CreateResult{SameInput: true, Rev: 1, State: OrderPending, CreatedAt: created, Version: 1}, again,
			"the same ID and fingerprint report the existing instance")

		n := b.newInstance("o1")
		n.Fingerprint, n.Input, n.Task = "fp:other", input("x"), "task:other"
		require.Equal(t, CreateResult{Rev: 1, State: OrderPending, CreatedAt: created, Version: 1}, b.createWith(t, n),
			"a different fingerprint is reported, not written")
		require.Equal(t, in, b.load(t, "o1"), "an existing instance is not touched")

		b.fire(t, "o1", "start")
		require.Equal(t, CreateResult{SameInput: true, Rev: 2, State: OrderReserving, CreatedAt: created, Version: 1},
			b.create(t, "o1"), "an existing instance is reported where it is now")

		v2 := orderV2()
		require.NoError(t, NewRegistry().Register(v2))
		n = b.newInstance("o2")
		n.Definition = v2
		res = b.createWith(t, n)
		require.Equal(t, 2, res.Version)
		require.Equal(t, 2, b.load(t, "o2").Version)
	})
}

// roundTrips is a go-redis hook that records every round trip, a command or
// a pipeline, as its commands' names and first arguments ("zadd of:due").
type roundTrips struct {
	mu   sync.Mutex
	sent [][]string
}

func (h *roundTrips) record(cmds ...redis.Cmder) {
	trip := make([]string, 0, len(cmds))
	for _, c := range cmds {
		args := c.Args()
		trip = append(trip, fmt.Sprint(args[0], " ", args[min(1, len(args)-1)]))
	}
	h.mu.Lock()
	h.sent = append(h.sent, trip)
	h.mu.Unlock()
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record(cmds...)
		return next(ctx, cmds)
	}
}

// touching returns the recorded round trips that hold any of cmds, and
// forgets every recorded one.
func (h *roundTrips) touching(cmds ...string) [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out [][]string
	for _, trip := range h.sent {
		if slices.ContainsFunc(trip, func(c string) bool { return slices.Contains(cmds, c) }) {
			out = append(out, trip)
		}
	}
	h.sent = nil
	return out
}

// TestStoreCreateIndexes: on one node, Create writes the instance's list
// index entry and due entry, then the instance, then its wake-up, in that
// order in one round trip.
func TestStoreCreateIndexes(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		trips := &roundTrips{}
		b.rdb.AddHook(trips)
		require.NoError(t, b.store.sc.load(ctx, b.rdb)) // no NOSCRIPT retry below

		created := b.clock.Now()
		due := created.Add(30 * time.Second)
		b.createDue(t, "o1", due)
		writes := []string{"zadd " + IndexKey, "zadd " + DueKey, "evalsha " + b.store.sc.create.Hash(), "rpush " + WakeKey(DefaultQueue)}
		got := trips.touching(writes...)
		require.Len(t, got, 1, "Create writes in one round trip: %q", got)
		var order []string
		for _, c := range got[0] {
			if slices.Contains(writes, c) {
				order = append(order, c)
			}
		}
		require.Equal(t, writes, order, "the index entries go first, the wake-up last")

		require.Equal(t, created.UnixMicro(), b.score(t, IndexKey, "o1"), "indexed by creation time in µs")
		require.Equal(t, due.UnixMilli(), b.score(t, DueKey, "o1"), "due in ms")
		require.Equal(t, "o1", b.wakeHead(t))
		ids, _ := b.list(t, ListQuery{Limit: 10})
		require.Equal(t, []string{"o1"}, ids)
		hist, err := b.store.History(ctx, "o1")
		require.NoError(t, err)
		require.Len(t, hist, 1)

		b.clock.Add(time.Second)
		b.createDue(t, "o2", due.Add(-time.Second))
		require.Equal(t, "o1", b.wakeHead(t), "the oldest instance is woken first")
		ids, _ = b.list(t, ListQuery{Limit: 10})
		require.Equal(t, []string{"o2", "o1"}, ids)
		entries, err := b.store.DueBefore(ctx, due, 10)
		require.NoError(t, err)
		require.Equal(t, []DueEntry{{ID: "o2", At: due.Add(-time.Second).UnixMilli()}, {ID: "o1", At: due.UnixMilli()}}, entries)
	})
}

// TestStoreCreateAgainKeepsTheEntries: a Create for an existing ID, with the
// same input or another, moves neither its index entry nor its due entry
// (even when a lease moved the latter) and leaves its record as it is.
func TestStoreCreateAgainKeepsTheEntries(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		created := b.clock.Now()
		b.create(t, "o1")
		leaseEnd := created.Add(30 * time.Second)
		b.claim(t, "o1", "w1", leaseEnd)
		before := b.raw(t, "o1")

		for _, fp := range []string{"fp:o1", "fp:other"} {
			t.Run(fp, func(t *testing.T) {
				b.clock.Add(time.Hour)
				n := b.newInstance("o1")
				n.Fingerprint, n.Input, n.Task, n.Due = fp, input(fp), "task:again", b.clock.Now().Add(time.Hour)
				res := b.createWith(t, n)
				require.False(t, res.Created)
				require.Equal(t, fp == "fp:o1", res.SameInput)

				require.Equal(t, before, b.raw(t, "o1"), "the record and history are not touched")
				require.Equal(t, created.UnixMicro(), b.score(t, IndexKey, "o1"), "the index entry is not moved")
				require.Equal(t, leaseEnd.UnixMilli(), b.score(t, DueKey, "o1"), "the due entry is not moved")
			})
		}
	})
}

func TestStoreCreateRestartsAnOrphanedHistory(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		b.start(t, "o1")
		b.fire(t, "o1", "start", "reserved")
		require.NoError(t, b.rdb.Del(ctx, RecordKey("o1")).Err()) // the record expired before its history

		_, err := b.store.Load(ctx, "o1")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = b.store.History(ctx, "o1")
		require.ErrorIs(t, err, ErrNotFound, "a history without its record is no instance")

		require.True(t, b.create(t, "o1").Created)
		raw := b.raw(t, "o1")
		require.Len(t, raw.History, 1, "the new instance's history holds only its created event")
		ev, err := decodeEvent(raw.History[0])
		require.NoError(t, err)
		require.Equal(t, EventCreated, ev.Type)
	})
}

// TestStoreReadsOfAMissingInstance: reading or watching an instance that does
// not exist gives ErrNotFound and writes nothing.
func TestStoreReadsOfAMissingInstance(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		_, err := b.store.Load(ctx, "missing")
		require.ErrorIs(t, err, ErrNotFound, "Load")
		_, err = b.store.History(ctx, "missing")
		require.ErrorIs(t, err, ErrNotFound, "History")
		_, err = b.store.Watch(ctx, "missing")
		require.ErrorIs(t, err, ErrNotFound, "Watch")
		b.requireNoKeys(t, "reads create no record", RecordKey("missing"), HistoryKey("missing"))
	})
}

// TestStoreSurvivesScriptFlush: the pipelines that run scripts by EVALSHA
// (Create, Claim, Apply taking the lease) reload them when Redis lost them,
// as after a restart or SCRIPT FLUSH.
func TestStoreSurvivesScriptFlush(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		flush := func(t *testing.T) {
			t.Helper()
			require.NoError(t, b.rdb.ScriptFlush(ctx).Err())
			loaded, err := b.rdb.ScriptExists(ctx, b.store.sc.create.Hash(), b.store.sc.claim.Hash()).Result()
			require.NoError(t, err)
			require.Equal(t, []bool{false, false}, loaded, "the server lost the scripts")
		}

		require.NoError(t, b.store.sc.load(ctx, b.rdb))
		flush(t)
		due := b.clock.Now().Add(time.Minute)
		res, err := b.store.Create(ctx, b.newInstance("o1"))
		require.NoError(t, err, "Create")
		require.True(t, res.Created)
		require.Equal(t, int64(1), b.load(t, "o1").Rev)
		require.Equal(t, res.CreatedAt.UnixMicro(), b.score(t, IndexKey, "o1"))
		require.Equal(t, due.UnixMilli(), b.score(t, DueKey, "o1"))
		require.Equal(t, "o1", b.wakeHead(t))

		flush(t)
		in, err := b.store.Claim(ctx, "o1", "w1", b.clock.Now().Add(time.Minute))
		require.NoError(t, err, "Claim")
		require.Equal(t, "w1", in.LeaseToken)

		flush(t)
		c := b.transition(t, in, "start")
		c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseAcquire, "w1", false, b.clock.Now().Add(2*time.Minute)
		applied, err := b.store.Apply(ctx, c)
		require.NoError(t, err, "Apply")
		require.Equal(t, Applied{Rev: 2, Seq: 2, Incarnation: 1}, applied)
		require.Equal(t, OrderReserving, b.load(t, "o1").State)
	})
}

func TestStoreClaim(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()

		_, err := b.store.Claim(ctx, "missing", "w1", now.Add(time.Minute))
		require.ErrorIs(t, err, ErrNotFound)

		b.requireNoKeys(t, "claiming creates no record", RecordKey("missing"), HistoryKey("missing"))

		want := b.start(t, "o1")
		until := now.Add(30 * time.Second)
		in, err := b.store.Claim(ctx, "o1", "w1", until)
		require.NoError(t, err)
		b.requireLeaseFor(t, 30*time.Second, in.LeaseUntil, "Redis counts the lease from its own clock")
		want.LeaseToken, want.LeaseUntil = "w1", in.LeaseUntil
		require.Equal(t, want, in, "Claim returns the whole instance, input included")
		require.Equal(t, input("o1"), []byte(in.Input))
		require.Equal(t, want, b.load(t, "o1"), "claiming does not change the revision")

		in, err = b.store.Claim(ctx, "o1", "w1", now.Add(time.Minute))
		require.NoError(t, err, "the holder claims again")
		b.requireLeaseFor(t, time.Minute, in.LeaseUntil)
		later := in.LeaseUntil

		_, err = b.store.Claim(ctx, "o1", "w2", now.Add(2*time.Minute))
		require.ErrorIs(t, err, ErrLeased)
		require.Equal(t, &LeasedError{Until: later}, err)
		require.Equal(t, "w1", b.load(t, "o1").LeaseToken)

		b.claim(t, "o1", "w1", now.Add(time.Millisecond)) // a lease that ends at once
		b.waitLeaseOver(t, "o1")
		in, err = b.store.Claim(ctx, "o1", "w2", now.Add(2*time.Minute))
		require.NoError(t, err, "an expired lease can be taken")
		require.Equal(t, "w2", in.LeaseToken)

		b.fire(t, "o1", "cancel")
		_, err = b.store.Claim(ctx, "o1", "w2", now.Add(3*time.Minute))
		require.ErrorIs(t, err, ErrTerminal)
	})
}

func TestStoreApplyCompareAndSet(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		in := b.start(t, "o1")
		until := b.clock.Now().Add(time.Minute)
		leaseEnd := b.claim(t, "o1", "w1", until).LeaseUntil
		start := b.transition(t, in, "start")

		for _, tc := range []struct {
			name   string
			change func(c *Change)
		}{
			{"wrong state", func(c *Change) { c.ExpectState = OrderReserving }},
			{"older revision", func(c *Change) { c.ExpectRev-- }},
			{"newer revision", func(c *Change) { c.ExpectRev++ }},
			{"held by another", func(c *Change) { c.Lease, c.Token = LeaseHold, "w2" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := b.raw(t, "o1")
				c := start
				var f Fields
				f.Result("reservation_id", "res_1")
				c.Fields = f
				tc.change(&c)
				_, err := b.store.Apply(ctx, c)
				stale := requireStale(t, err, OrderPending, 1)
				require.Equal(t, "w1", stale.LeaseToken)
				require.Equal(t, leaseEnd, stale.LeaseUntil)
				require.Equal(t, before, b.raw(t, "o1"), "a stale write writes nothing")
			})
		}

		t.Run("missing", func(t *testing.T) {
			for _, c := range []Change{
				{ExpectState: OrderPending, ExpectRev: 1, Lease: LeaseIgnore, KeepLease: true},
				{ExpectState: "", ExpectRev: 0, Lease: LeaseIgnore, KeepLease: true}, // what a missing record reads as
				{ExpectState: OrderPending, ExpectRev: 1, Lease: LeaseAcquire, Token: "w1", LeaseUntil: until},
			} {
				c.ID, c.State, c.Status, c.Event = "missing", OrderReserving, StatusRunning, &Event{Type: EventTransition}
				_, err := b.store.Apply(ctx, c)
				requireStale(t, err, "", 0)
				require.Equal(t, rawInstance{Record: map[string]string{}, History: []string{}}, b.raw(t, "missing"),
					"%s: nothing is written", c.Lease)
			}
		})

		res := b.apply(t, start)
		require.Equal(t, Applied{Rev: 2, Seq: 2, Incarnation: 1}, res)
		_, err := b.store.Apply(ctx, start)
		requireStale(t, err, OrderReserving, 2)
		require.Equal(t, OrderReserving, b.load(t, "o1").State)
	})
}

// TestStoreStaleErrorWithoutLease: with no lease on the instance, the
// StaleError's LeaseUntil is the zero time, as Instance.LeaseUntil is.
func TestStoreStaleErrorWithoutLease(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		in := b.start(t, "o1")
		c := b.transition(t, in, "start")
		c.ExpectRev++
		_, err := b.store.Apply(t.Context(), c)
		stale := requireStale(t, err, OrderPending, 1)
		require.Empty(t, stale.LeaseToken)
		require.True(t, stale.LeaseUntil.IsZero(), "LeaseUntil is %v, want the zero time", stale.LeaseUntil)
	})
}

func TestStoreApplyLeaseModes(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()
		for i, tc := range []struct {
			name    string
			holder  string // "" for no lease
			expired bool
			mode    LeaseMode
			token   string
			ok      bool
		}{
			{"hold by the holder", "w1", false, LeaseHold, "w1", true},
			{"hold by the holder after expiry", "w1", true, LeaseHold, "w1", true},
			{"hold by another", "w1", false, LeaseHold, "w2", false},
			{"hold without a lease", "", false, LeaseHold, "w1", false},
			{"acquire a free lease", "", false, LeaseAcquire, "w2", true},
			{"acquire a released lease", "released", false, LeaseAcquire, "w2", true},
			{"acquire our own lease", "w1", false, LeaseAcquire, "w1", true},
			{"acquire another's live lease", "w1", false, LeaseAcquire, "w2", false},
			{"acquire another's expired lease", "w1", true, LeaseAcquire, "w2", true},
			{"none ignores a live lease", "w1", false, LeaseIgnore, "", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("o%d", i)
				in := b.start(t, id)
				holderUntil := now.Add(time.Minute)
				if tc.expired {
					holderUntil = now // a lease of the shortest length, waited out below
				}
				switch tc.holder {
				case "":
				case "released":
					b.claim(t, id, "w1", holderUntil)
					require.NoError(t, b.store.Release(ctx, id, "w1"))
				default:
					b.claim(t, id, tc.holder, holderUntil)
					if tc.expired {
						b.waitLeaseOver(t, id)
					}
				}
				before := b.load(t, id)

				c := b.transition(t, in, "start")
				c.Lease, c.Token = tc.mode, tc.token
				c.KeepLease = tc.mode == LeaseIgnore
				c.LeaseUntil = now.Add(2 * time.Minute)
				_, err := b.store.Apply(ctx, c)
				after := b.load(t, id)
				if !tc.ok {
					requireStale(t, err, OrderPending, in.Rev)
					require.Equal(t, before, after)
					return
				}
				require.NoError(t, err)
				require.Equal(t, OrderReserving, after.State)
				if tc.mode == LeaseIgnore {
					require.Equal(t, [2]any{before.LeaseToken, before.LeaseUntil}, [2]any{after.LeaseToken, after.LeaseUntil},
						"the lease is left as it was")
					return
				}
				require.Equal(t, tc.token, after.LeaseToken, "the writer holds the lease")
				b.requireLeaseFor(t, 2*time.Minute, after.LeaseUntil)
			})
		}
	})
}

func TestStoreApplyLeaseAfterWrite(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		in := b.start(t, "o1")
		until := b.clock.Now().Add(time.Minute)
		leaseEnd := b.claim(t, "o1", "w1", until).LeaseUntil

		c := b.transition(t, in, "start")
		c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseHold, "w1", true, until.Add(time.Hour)
		b.apply(t, c)
		in = b.load(t, "o1")
		require.Equal(t, "w1", in.LeaseToken)
		require.Equal(t, leaseEnd, in.LeaseUntil, "KeepLease ignores LeaseUntil")

		c = b.transition(t, in, "reserved")
		c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseHold, "w1", false, until.Add(time.Minute)
		b.apply(t, c)
		in = b.load(t, "o1")
		require.Equal(t, "w1", in.LeaseToken)
		b.requireLeaseFor(t, 2*time.Minute, in.LeaseUntil, "a LeaseUntil extends the lease")

		c = b.transition(t, in, "charged")
		c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseHold, "w1", false, time.Time{}
		b.apply(t, c)
		in = b.load(t, "o1")
		require.Empty(t, in.LeaseToken, "the zero LeaseUntil releases the lease")
		require.True(t, in.LeaseUntil.IsZero())

		b.claim(t, "o1", "w2", until) // a released lease is free at once
	})
}

func TestStoreApplyFields(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		in := b.start(t, "o1")
		next := b.clock.Now().Add(1500 * time.Millisecond)

		var f Fields
		f.Result("reservation_id", "res_1")
		f.Attempt(StepReserve, 2)
		f.Signal(SignalCancel, true)
		f.Declined(StepCharge, true)
		f.NextAt(next)
		f.Reason(ReasonCancelled)
		f.Error("inventory: 503 service unavailable")
		f.Task("task:o1:2")
		c := b.transition(t, in, "start")
		c.Fields = f
		b.apply(t, c)

		got := b.load(t, "o1")
		require.Equal(t, map[string]string{"reservation_id": "res_1"}, got.Results)
		require.Equal(t, map[string]int{StepReserve: 2}, got.Attempts)
		require.Equal(t, map[string]bool{SignalCancel: true}, got.Signals)
		require.Equal(t, map[string]bool{StepCharge: true}, got.Declined)
		require.Equal(t, next, got.NextAt)
		require.Equal(t, ReasonCancelled, got.Reason)
		require.Equal(t, "inventory: 503 service unavailable", got.LastError)
		require.Equal(t, "task:o1:2", got.Task)
		require.False(t, got.InDoubt(StepReserve, "reservation_id"), "a recorded result settles the step")

		// ApplyFields mirrors in memory what the write did in Redis.
		in.ApplyFields(f)
		in.State, in.Rev, in.Updated = got.State, got.Rev, got.Updated
		require.Equal(t, got, in)

		// "" clears a field.
		var cleared Fields
		cleared.Signal(SignalCancel, false)
		cleared.Declined(StepCharge, false)
		cleared.NextAt(time.Time{})
		cleared.Error("")
		cleared.Reason("")
		c = b.transition(t, got, "reserved")
		c.Fields = cleared
		b.apply(t, c)
		got = b.load(t, "o1")
		require.False(t, got.Signals[SignalCancel])
		require.False(t, got.Declined[StepCharge])
		require.True(t, got.NextAt.IsZero())
		require.Empty(t, got.LastError)
		require.Empty(t, got.Reason)
		require.Equal(t, map[string]string{"reservation_id": "res_1"}, got.Results, "fields not named are kept")
		require.Equal(t, map[string]int{StepReserve: 2}, got.Attempts)
		require.False(t, got.InDoubt(StepCharge, "transaction_id"), "never attempted")
	})
}

func TestStoreApplyShortensTheError(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		for i, msg := range []string{
			"",
			"short",
			strings.Repeat("x", maxErrorLen),
			strings.Repeat("x", 200),
			"a" + strings.Repeat("€", 30),    // a 3-byte rune straddles byte 60
			"ab" + strings.Repeat("€", 30),   // likewise, another offset
			strings.Repeat("é", 40),          // 2-byte runes end exactly at byte 60
			strings.Repeat("🙂", 20) + "tail", // 4-byte runes
		} {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				id := fmt.Sprintf("o%d", i)
				in := b.start(t, id)
				c := b.transition(t, in, "start")
				c.Fields.Error(msg)
				c.Event.Error = msg
				b.apply(t, c)

				got := b.load(t, id).LastError
				require.True(t, utf8.ValidString(got), "%q is not valid UTF-8", got)
				require.LessOrEqual(t, len(got), maxErrorLen)
				require.True(t, strings.HasPrefix(msg, got), "%q is not a prefix of %q", got, msg)
				require.Greater(t, len(got), min(len(msg), maxErrorLen)-utf8.UTFMax, "no more than a cut rune is dropped")

				hist, err := b.store.History(t.Context(), id)
				require.NoError(t, err)
				require.Equal(t, msg, hist[len(hist)-1].Error, "the history keeps the error whole")
			})
		}
	})
}

func TestStoreHistory(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		created := b.clock.Now()
		in := b.start(t, "o1")

		at := created.Add(1234567 * time.Microsecond)
		full := Event{
			At: at, Type: EventTransition, Event: "start", From: OrderPending, To: OrderReserving,
			Step: StepReserve, Attempt: 3, Error: "boom", Detail: json.RawMessage(`{"reservation_id":"res_1","n":[1,2]}`),
		}
		c := b.transition(t, in, "start")
		c.Event = &full
		require.Equal(t, Applied{Rev: 2, Seq: 2, Incarnation: 1}, b.apply(t, c))

		in = b.load(t, "o1")
		c = b.transition(t, in, "reserved")
		c.Event = nil
		require.Equal(t, Applied{Rev: 3, Seq: 0, Incarnation: 1}, b.apply(t, c), "a change without an event appends none")

		b.clock.Add(time.Second)
		in = b.load(t, "o1")
		c = b.transition(t, in, "charged")
		c.Event = &Event{Type: EventStepFailed, Step: StepCharge, Attempt: 1, Error: "declined"}
		require.Equal(t, Applied{Rev: 4, Seq: 3, Incarnation: 1}, b.apply(t, c))

		hist, err := b.store.History(ctx, "o1")
		require.NoError(t, err)
		wantFull := full
		wantFull.Seq = 2
		require.Equal(t, []Event{
			{Seq: 1, At: created, Type: EventCreated, To: OrderPending, Detail: input("o1")},
			wantFull,
			{Seq: 3, At: b.clock.Now(), Type: EventStepFailed, Step: StepCharge, Attempt: 1, Error: "declined"},
		}, hist)

		// Seq is gapless from 1 over many writes.
		in = b.load(t, "o1")
		for i := range 20 {
			c := Change{ID: "o1", ExpectState: in.State, ExpectRev: in.Rev, Lease: LeaseIgnore, KeepLease: true,
				State: in.State, Status: in.Status, Event: &Event{Type: EventSignal, Event: fmt.Sprint("s", i)}}
			res := b.apply(t, c)
			require.Equal(t, int64(4+i), res.Seq)
			in.Rev = res.Rev
		}
		hist, err = b.store.History(ctx, "o1")
		require.NoError(t, err)
		require.Len(t, hist, 23)
		for i, ev := range hist {
			require.Equal(t, i+1, ev.Seq)
		}
	})
}

func TestStoreRetention(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		keys := []string{RecordKey("o1"), HistoryKey("o1")}
		b.start(t, "o1")
		in := b.fire(t, "o1", "start", "reserved", "charge_failed")
		require.Equal(t, OrderReleasing, in.State)
		for _, k := range keys {
			b.requireTTL(t, k, 0) // unfinished instances never expire
		}

		c := b.transition(t, in, "released")
		require.Equal(t, StatusFailed, c.Status)
		b.apply(t, c)
		for _, k := range keys {
			b.requireTTL(t, k, testRetention)
		}

		// The same for an instance that ends at once, cancelled.
		b.start(t, "o2")
		b.fire(t, "o2", "cancel")
		b.requireTTL(t, RecordKey("o2"), testRetention)
		b.requireTTL(t, HistoryKey("o2"), testRetention)
	})
}

func TestStoreApplyRace(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		const workers = 20
		in := b.start(t, "o1")
		until := b.clock.Now().Add(time.Minute)

		start := b.transition(t, in, "start")
		errs := concurrently(workers, func(i int) error {
			c := start
			c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseAcquire, fmt.Sprint("w", i), false, until
			_, err := b.store.Apply(t.Context(), c)
			return err
		})

		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			requireStale(t, err, OrderReserving, 2)
		}
		require.Equal(t, 1, won, "exactly one worker moves the instance")

		hist, err := b.store.History(t.Context(), "o1")
		require.NoError(t, err)
		starts := 0
		for _, ev := range hist {
			if ev.Event == "start" {
				starts++
			}
		}
		require.Equal(t, 1, starts, "the history holds the transition once")
		require.Len(t, hist, 2)
	})
}

func TestStoreRenewAndRelease(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()
		b.start(t, "o1")
		b.claim(t, "o1", "w1", now.Add(time.Minute))
		rev := b.load(t, "o1").Rev

		ok, err := b.store.Renew(ctx, "o1", "w2", now.Add(time.Hour))
		require.NoError(t, err)
		require.False(t, ok, "only the holder renews")
		ok, err = b.store.Renew(ctx, "o1", "w1", now.Add(2*time.Minute))
		require.NoError(t, err)
		require.True(t, ok)
		in := b.load(t, "o1")
		require.Equal(t, "w1", in.LeaseToken)
		b.requireLeaseFor(t, 2*time.Minute, in.LeaseUntil)
		renewed := in.LeaseUntil
		require.Equal(t, rev, in.Rev, "renewing does not change the revision")

		require.NoError(t, b.store.Release(ctx, "o1", "w2"))
		in = b.load(t, "o1")
		require.Equal(t, "w1", in.LeaseToken, "only the holder releases")
		require.Equal(t, renewed, in.LeaseUntil)

		require.NoError(t, b.store.Release(ctx, "o1", "w1"))
		in = b.load(t, "o1")
		require.Empty(t, in.LeaseToken)
		require.True(t, in.LeaseUntil.IsZero())
		require.Equal(t, rev, in.Rev, "releasing does not change the revision")

		ok, err = b.store.Renew(ctx, "o1", "w1", now.Add(time.Hour))
		require.NoError(t, err)
		require.False(t, ok, "a released lease cannot be renewed")

		ok, err = b.store.Renew(ctx, "missing", "w1", now.Add(time.Hour))
		require.NoError(t, err)
		require.False(t, ok)
		require.NoError(t, b.store.Release(ctx, "missing", "w1"))
		b.requireNoKeys(t, "renew and release create no record", RecordKey("missing"))
	})
}
