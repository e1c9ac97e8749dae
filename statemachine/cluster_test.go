package statemachine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// scriptRuns is a go-redis hook that records, by script hash, the scripts
// a client ran and the errors they returned, and the pipelines each node
// client sent.
type scriptRuns struct {
	mu     sync.Mutex
	ran    map[string]int
	failed map[string][]string
	// trips are the pipelines node clients sent, as "addr: cmd cmd ...".
	trips []string
}

func newScriptRuns() *scriptRuns {
	return &scriptRuns{ran: map[string]int{}, failed: map[string][]string{}}
}

func (h *scriptRuns) note(cmds []redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cmds {
		args := c.Args()
		name := strings.ToLower(fmt.Sprint(args[0]))
		if (name != "evalsha" && name != "eval") || len(args) < 2 {
			continue
		}
		hash := fmt.Sprint(args[1])
		if name == "eval" {
			hash = redis.NewScript(hash).Hash()
		}
		h.ran[hash]++
		if err := c.Err(); err != nil && err != redis.Nil && !isNoScript(err) {
			h.failed[hash] = append(h.failed[hash], err.Error())
		}
	}
}

// nodeHook records the pipelines one node client sends.
type nodeHook struct {
	h    *scriptRuns
	addr string
}

func (n nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (n nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (n nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = strings.ToLower(c.Name())
		}
		n.h.mu.Lock()
		n.h.trips = append(n.h.trips, n.addr+": "+strings.Join(names, " "))
		n.h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// setupClusterStore returns a store bundle over a new 3-master cluster
// (with replicas replicas per master), whose scripts runs records.
func setupClusterStore(t *testing.T, replicas int, cfg StoreConfig) (*storeBundle, *scriptRuns, *redistest.Cluster) {
	t.Helper()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: replicas})
	r := &redistest.Instance{Backend: redistest.BackendCluster, Addr: c.Nodes[0].Addr(), Cluster: c}
	runs := newScriptRuns()
	clock := &testClock{now: storeEpoch}
	cfg.Retention, cfg.Clock = testRetention, clock.Now
	cfg.DueFlushInterval = cmpDuration(cfg.DueFlushInterval, time.Hour)
	rdb := c.Client(t)
	rdb.AddHook(redistest.Observer(runs.note))
	rdb.OnNewNode(func(n *redis.Client) { n.AddHook(nodeHook{h: runs, addr: n.Options().Addr}) })
	store := NewStore(rdb, cfg)
	t.Cleanup(store.Close)
	return &storeBundle{r: r, rdb: rdb, store: store, clock: clock, def: compiledOrderV1(t)}, runs, c
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// TestClusterScriptsStayInOneSlot runs every Lua script of the store on a
// real 3-master Redis Cluster, over many instances whose slots are spread
// over every master and over the sharded indexes: a script that touched
// keys of two slots would fail with CROSSSLOT (or "non local key"). Every
// script must have run, and none may have failed.
func TestClusterScriptsStayInOneSlot(t *testing.T) {
	t.Parallel()
	b, runs, c := setupClusterStore(t, 0, StoreConfig{})
	ctx := t.Context()
	require.Equal(t, DefaultClusterShards, b.store.Shards().N())

	// The instances' slots cover every master.
	masters := map[string]bool{}
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("c-%02d", i)
		ids = append(ids, id)
		addr, err := c.MasterOf(SlotOf(RecordKey(id)))
		require.NoError(t, err)
		masters[addr] = true
	}
	require.Len(t, masters, 3, "the test instances live on every master")

	outcome, bound, err := b.store.BindIdempotencyKey(ctx, HashIdempotencyKey("k1"), "fp:c-00", "c-00", time.Hour)
	require.NoError(t, err)
	require.Equal(t, IdempotencyNew, outcome)
	require.Equal(t, "c-00", bound)

	feed := b.store.FollowFinished()
	t.Cleanup(feed.Close)
	select {
	case <-feed.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the finished channels were not subscribed")
	}

	for i, id := range ids {
		b.start(t, id)
		b.clock.Add(time.Millisecond)
		until := b.clock.Now().Add(time.Minute)
		in := b.claim(t, id, "w1", until)
		ok, err := b.store.Renew(ctx, id, "w1", until)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.store.Heartbeat(ctx, id, "w1", until, `{"percent":10}`, map[string]string{"cp": "1"})
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, b.store.Release(ctx, id, "w1"))
		if i%2 == 0 {
			// Watched, then finished: its shard's channel announces it.
			if i%4 == 0 {
				require.Equal(t, StatusRunning, b.watch(t, id))
			}
			b.fire(t, id, "cancel")
			continue
		}
		// A transition that takes the lease (the due entry moves too, in
		// the instance's shard), then a handoff with a wake-up.
		c := b.transition(t, in, "start")
		c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseAcquire, "w2", false, until
		b.apply(t, c)
		require.NoError(t, b.store.HandOff(ctx, id, "w2", b.clock.Now(), QueueName(DefaultQueue, PriorityNormal)))
	}

	// Every watched instance that finished was announced on its shard's
	// channel (SPUBLISH after the write).
	var announced []string
	for len(announced) < 10 {
		select {
		case id := <-feed.IDs():
			announced = append(announced, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("announced only %v", announced)
		}
	}
	slices.Sort(announced)
	require.Equal(t, []string{"c-00", "c-04", "c-08", "c-12", "c-16", "c-20", "c-24", "c-28", "c-32", "c-36"}, announced)

	// The due index: every running instance is due, in its shard; the
	// reaper's claim script moves entries in their shards.
	b.store.FlushDue()
	due, err := b.store.DueBefore(ctx, b.clock.Now().Add(time.Hour), 500)
	require.NoError(t, err)
	require.Len(t, due, 20, "the running instances, from every shard")
	won, err := b.store.ClaimDueBatch(ctx, due, b.clock.Now().Add(2*time.Hour))
	require.NoError(t, err)
	require.NotContains(t, won, false)
	ok, err := b.store.ClaimDue(ctx, DueEntry{ID: due[0].ID, At: b.clock.Now().Add(2 * time.Hour).UnixMilli()}, b.clock.Now().Add(3*time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, b.store.Park(ctx, "c-01", b.clock.Now(), b.clock.Now().Add(time.Hour)))
	n, err := b.store.DeadLetters(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	// The list merges the shards newest first, page by page.
	all, pages := b.listAll(t, ListQuery{Limit: 7})
	want := slices.Clone(ids)
	slices.Reverse(want)
	require.Equal(t, want, all)
	require.Equal(t, []int{7, 7, 7, 7, 7, 5}, pages)

	runs.mu.Lock()
	defer runs.mu.Unlock()
	for i, sc := range b.store.sc.all {
		require.Positive(t, runs.ran[sc.Hash()], "script %d of scripts.go never ran", i)
	}
	require.Len(t, b.store.sc.all, 9, "a new script must be run above")
	require.Empty(t, runs.failed, "scripts failed on the cluster")
}

// TestClusterDurableWriteWaitsOnItsNode: with --durability replicas=1 on a
// cluster, the WAIT that makes a write durable rides in one pipeline with
// the write, on the master that serves the written instance's slot (a WAIT
// sent through the cluster client would reach an arbitrary node and wait
// for nothing).
func TestClusterDurableWriteWaitsOnItsNode(t *testing.T) {
	t.Parallel()
	b, runs, c := setupClusterStore(t, 1, StoreConfig{Durability: Durability{Mode: DurabilityReplicas, Replicas: 1}})
	ctx := t.Context()
	require.NoError(t, b.store.sc.load(ctx, b.rdb)) // on every master: no NOSCRIPT retry below
	warnings, err := b.store.CheckDurability(ctx)
	require.NoError(t, err)
	require.Empty(t, warnings, "every master has its replica")

	for _, id := range []string{"d-1", "d-2", "d-3", "d-4", "d-5", "d-6"} {
		b.start(t, id)
		in := b.load(t, id)
		ch := b.transition(t, in, "start")
		ch.Durable = true
		b.apply(t, ch)

		record, err := c.MasterOf(SlotOf(RecordKey(id)))
		require.NoError(t, err)
		shard, err := c.MasterOf(SlotOf(b.store.Shards().DueKey(b.store.Shards().Of(id))))
		require.NoError(t, err)
		runs.mu.Lock()
		var trips []string
		for _, trip := range runs.trips {
			if strings.Contains(trip, "wait") {
				trips = append(trips, trip)
			}
		}
		runs.trips = nil
		runs.mu.Unlock()
		require.Equal(t, []string{
			shard + ": zadd zadd wait", // the index entries, made durable on their node
			record + ": evalsha wait",  // the record, on its own
			record + ": evalsha wait",  // the durable transition
		}, trips, "instance %s", id)
	}
}
