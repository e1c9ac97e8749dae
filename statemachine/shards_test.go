package statemachine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

func TestSlotOfMatchesRedis(t *testing.T) {
	t.Parallel()
	// CLUSTER KEYSLOT answers, from the Redis Cluster specification.
	for key, slot := range map[string]int{
		"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "{user1000}.followers": 3443,
		"foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "foo{bar}{zap}": 5061,
	} {
		require.Equal(t, slot, SlotOf(key), "slot of %q", key)
	}
}

func TestShardsLayout(t *testing.T) {
	t.Parallel()
	one := NewShards(1)
	require.Equal(t, 1, one.N())
	require.Equal(t, DueKey, one.DueKey(0), "one shard keeps the unsharded names")
	require.Equal(t, IndexKey, one.IndexKey(0))
	require.Equal(t, DeadLetterKey, one.DeadLetterKey(0))
	require.Equal(t, WakeKey("payments:high"), one.WakeKey(0, "payments:high"))
	require.Equal(t, FinishedChannel, one.FinishedChannel(0))
	require.Equal(t, "payments:high", QueueOfWakeKey(one.WakeKey(0, "payments:high")))

	s := NewShards(16)
	require.Equal(t, 16, s.N())
	seen := map[int]bool{}
	for k := range 16 {
		slot := SlotOf(s.DueKey(k))
		require.Equal(t, k*1024, slot, "shard %d sits at slot k·16384/N", k)
		for _, key := range []string{s.IndexKey(k), s.DeadLetterKey(k), s.WakeKey(k, "workflow"), s.WakeKey(k, "payments:low"), s.FinishedChannel(k)} {
			require.Equal(t, slot, SlotOf(key), "%s shares its shard's slot", key)
		}
		require.Equal(t, "payments:low", QueueOfWakeKey(s.WakeKey(k, "payments:low")))
		seen[slot] = true
	}
	require.Len(t, seen, 16)
	require.Regexp(t, `^of:due:\{s0(\.[0-9]+)?\}$`, s.DueKey(0))
	require.Regexp(t, `^of:wake:\{s3(\.[0-9]+)?\}:payments$`, s.WakeKey(3, "payments"))

	// Instances spread over the shards.
	counts := make([]int, 16)
	for i := range 16000 {
		counts[s.Of(fmt.Sprintf("ord-%d", i))]++
	}
	for k, n := range counts {
		require.InDelta(t, 1000, n, 150, "shard %d holds %d of 16000", k, n)
	}
}

func TestResolveShards(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	rdb := r.Client(t)
	n, err := ResolveShards(t.Context(), rdb, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a single node defaults to one shard")
	_, err = ResolveShards(t.Context(), rdb, 4)
	require.ErrorIs(t, err, ErrShardsMismatch, "the number never changes under a deployment")
	n, err = ResolveShards(t.Context(), rdb, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// TestShardedStoreOnOneNode runs the sharded layout on miniredis: the list
// merges the shards newest first through ties of creation time, whatever
// the page size; the reaper's reads and the trim cover every shard.
func TestShardedStoreOnOneNode(t *testing.T) {
	t.Parallel()
	b := setupStoreConfig(t, redistest.New(t, redistest.BackendMiniredis), StoreConfig{Shards: 5, DueFlushInterval: time.Hour})
	ctx := t.Context()
	// 60 instances, 4 at each creation time, so that ties span shards.
	want := b.startMany(t, 60, 4, time.Millisecond)
	for _, limit := range []int{1, 3, 4, 7, 60, 100} {
		all, _ := b.listAll(t, ListQuery{Limit: limit})
		require.Equal(t, want, all, "pages of %d", limit)
	}
	// A filter reads through the shards too.
	b.fire(t, "o-07", "cancel")
	got, next := b.list(t, ListQuery{Status: StatusCancelled, Limit: 10})
	require.Equal(t, []string{"o-07"}, got)
	require.Empty(t, next)

	due, err := b.store.DueBefore(ctx, b.clock.Now().Add(time.Hour), 500)
	require.NoError(t, err)
	require.Len(t, due, 60)
	n, _, err := b.store.DueStats(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 60, n)

	// The trim goes shard after shard, and back to the first.
	require.NoError(t, b.rdb.Del(ctx, RecordKey("o-01"), RecordKey("o-02")).Err())
	var c TrimCursor
	removed := 0
	for range 5 {
		var r int
		c, r, err = b.store.TrimIndex(ctx, b.clock.Now().Add(time.Hour), c, 100)
		require.NoError(t, err)
		removed += r
	}
	require.Equal(t, 2, removed)
	require.Equal(t, TrimCursor{}, c)
	all, _ := b.listAll(t, ListQuery{Limit: 10})
	require.Equal(t, slices.DeleteFunc(want, func(id string) bool { return id == "o-01" || id == "o-02" }), all)
}
