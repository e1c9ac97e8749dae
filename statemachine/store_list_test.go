package statemachine

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// startMany starts n instances "o-00", "o-01", ..., moving the clock on by
// step after every group of perTick, so that each group shares its creation
// time. It returns their IDs newest first: by creation time, then by ID,
// both descending, as List orders them.
func (b *storeBundle) startMany(t *testing.T, n, perTick int, step time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		if i > 0 && i%perTick == 0 {
			b.clock.Add(step)
		}
		ids[i] = fmt.Sprintf("o-%02d", i)
		b.start(t, ids[i])
	}
	slices.Reverse(ids)
	return ids
}

// ids returns the IDs of instances.
func ids(insts []*Instance) []string {
	var out []string // nil when empty, as in the tables below
	for _, in := range insts {
		out = append(out, in.ID)
	}
	return out
}

// list runs q, which must succeed, and returns the IDs and next cursor.
func (b *storeBundle) list(t *testing.T, q ListQuery) ([]string, string) {
	t.Helper()
	insts, next, err := b.store.List(t.Context(), q)
	require.NoError(t, err)
	return ids(insts), next
}

// listAll pages through q from the start and returns every ID, in order,
// with the size of each page.
func (b *storeBundle) listAll(t *testing.T, q ListQuery) (all []string, pages []int) {
	t.Helper()
	for range 1000 {
		page, next := b.list(t, q)
		all, pages = append(all, page...), append(pages, len(page))
		require.LessOrEqual(t, len(page), q.Limit)
		if next == "" {
			return all, pages
		}
		q.Cursor = next
	}
	t.Fatal("List never ended")
	return nil, nil
}

func TestStoreListNewestFirst(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		want := b.startMany(t, 5, 1, time.Second)

		got, next := b.list(t, ListQuery{Limit: 10})
		require.Equal(t, want, got)
		require.Empty(t, next)

		got, next = b.list(t, ListQuery{Limit: 3})
		require.Equal(t, want[:3], got)
		require.NotEmpty(t, next)
		got, next = b.list(t, ListQuery{Limit: 3, Cursor: next})
		require.Equal(t, want[3:], got)
		require.Empty(t, next)

		got, _ = b.list(t, ListQuery{})
		require.Equal(t, want[:1], got, "a zero limit lists one")

		insts, _, err := b.store.List(t.Context(), ListQuery{Limit: 1})
		require.NoError(t, err)
		require.Equal(t, []*Instance{b.load(t, want[0])}, insts, "List returns whole instances")
	})
}

func TestStoreListPagination(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		want := b.startMany(t, 25, 3, time.Millisecond) // creation times shared by threes
		got, pages := b.listAll(t, ListQuery{Limit: 7})
		require.Equal(t, want, got, "every instance once, newest first")
		require.Equal(t, []int{7, 7, 7, 4}, pages)

		// Instances started while paging are newer than the cursor: they do
		// not shift later pages.
		first, next := b.list(t, ListQuery{Limit: 7})
		require.Equal(t, want[:7], first)
		b.clock.Add(time.Second)
		b.start(t, "new")
		rest, _ := b.listAll(t, ListQuery{Limit: 7, Cursor: next})
		require.Equal(t, want[7:], rest)
	})
}

// TestStoreListManyAtOneCreatedTime pages through more instances sharing one
// creation time than List reads from the index in one batch (50).
func TestStoreListManyAtOneCreatedTime(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		want := b.startMany(t, 60, 60, 0)
		got, _ := b.listAll(t, ListQuery{Limit: 7})
		require.Len(t, got, len(want), "paging lists every instance")
		require.Equal(t, want, got, "every instance once, newest first")
	})
}

func TestStoreListFilters(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		all := b.startMany(t, 6, 1, time.Second) // o-05 is the newest
		b.fire(t, "o-00", "start")
		b.fire(t, "o-01", "start", "reserved", "charged", "shipped")
		b.fire(t, "o-02", "cancel")
		b.fire(t, "o-03", "start", "reserve_failed")
		b.fire(t, "o-04", "start")

		for _, tc := range []struct {
			q    ListQuery
			want []string
		}{
			{ListQuery{Status: StatusRunning}, []string{"o-05", "o-04", "o-00"}},
			{ListQuery{Status: StatusCompleted}, []string{"o-01"}},
			{ListQuery{Status: StatusCancelled}, []string{"o-02"}},
			{ListQuery{Status: StatusFailed}, []string{"o-03"}},
			{ListQuery{State: OrderReserving}, []string{"o-04", "o-00"}},
			{ListQuery{State: OrderPending}, []string{"o-05"}},
			{ListQuery{Status: StatusRunning, State: OrderReserving}, []string{"o-04", "o-00"}},
			{ListQuery{Status: StatusCompleted, State: OrderReserving}, nil},
			{ListQuery{State: OrderShipping}, nil},
			{ListQuery{}, all},
		} {
			t.Run(fmt.Sprintf("%s/%s", tc.q.Status, tc.q.State), func(t *testing.T) {
				tc.q.Limit = 10
				got, next := b.list(t, tc.q)
				require.Equal(t, tc.want, got)
				require.Empty(t, next)

				tc.q.Limit = 1
				got, _ = b.listAll(t, tc.q)
				require.Equal(t, tc.want, got, "one by one")
			})
		}
	})
}

func TestStoreListFilterReadsPastOneBatch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		all := b.startMany(t, 70, 1, time.Millisecond)
		oldest := all[len(all)-1]
		b.fire(t, oldest, "start")

		got, next := b.list(t, ListQuery{State: OrderReserving, Limit: 5})
		require.Equal(t, []string{oldest}, got)
		require.Empty(t, next)
	})
}

func TestStoreListBadCursor(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		b.startMany(t, 2, 1, time.Second)
		enc := base64.RawURLEncoding.EncodeToString
		for _, cursor := range []string{
			"%%%",              // not base64
			enc([]byte("123")), // no separator
			enc([]byte("123|")),
			enc([]byte("soon|o-01")),
			enc([]byte("1.5|o-01")),
		} {
			_, _, err := b.store.List(t.Context(), ListQuery{Limit: 5, Cursor: cursor})
			require.ErrorIs(t, err, ErrBadCursor, "cursor %q", cursor)
		}
	})
}

func TestStoreListDropsEntriesWithoutARecord(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		b.startMany(t, 3, 1, time.Second)
		created := b.clock.Now().UnixMicro()
		require.NoError(t, b.rdb.Del(ctx, RecordKey("o-01"), HistoryKey("o-01")).Err()) // expired

		// A young entry without a record may be a Create between its
		// steps: it is skipped and kept.
		got, _ := b.list(t, ListQuery{Limit: 10})
		require.Equal(t, []string{"o-02", "o-00"}, got)
		require.NotEqual(t, int64(-1), b.score(t, IndexKey, "o-01"), "a young o-01 stays in the index")

		b.clock.Add(orphanGrace)
		got, _ = b.list(t, ListQuery{Limit: 10})
		require.Equal(t, []string{"o-02", "o-00"}, got)
		require.Equal(t, int64(-1), b.score(t, IndexKey, "o-01"), "o-01 is dropped from the index")
		require.Equal(t, created, b.score(t, IndexKey, "o-02"), "the others stay")
	})
}

// commandCounter is a go-redis hook that counts the commands a client sends
// by name, and the index entries its ZRANGEs return.
type commandCounter struct {
	mu      sync.Mutex
	counts  map[string]int
	entries int
}

func newCommandCounter() *commandCounter { return &commandCounter{counts: map[string]int{}} }

// DialHook implements redis.Hook.
func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		c.count(cmd)
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return err
	}
}

func (c *commandCounter) count(cmd redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[cmd.Name()]++
	if z, ok := cmd.(*redis.ZSliceCmd); ok {
		c.entries += len(z.Val())
	}
}

// take returns the counts so far and starts afresh.
func (c *commandCounter) take() (counts map[string]int, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts, entries = c.counts, c.entries
	c.counts, c.entries = map[string]int{}, 0
	return counts, entries
}

// fillIndex adds n bare running instances to the list index, newer than
// everything the clock has made so far: just the fields a filter reads.
func (b *storeBundle) fillIndex(t *testing.T, n int) {
	t.Helper()
	base := b.clock.Now().UnixMicro()
	_, err := b.rdb.Pipelined(t.Context(), func(p redis.Pipeliner) error {
		for i := range n {
			id := fmt.Sprintf("bare-%05d", i)
			p.HSet(t.Context(), RecordKey(id), fieldStatus, string(StatusRunning), fieldState, OrderPending)
			p.ZAdd(t.Context(), IndexKey, redis.Z{Score: float64(base + 1 + int64(i)), Member: id})
		}
		return nil
	})
	require.NoError(t, err)
}

// A filter whose matches are rare costs a bounded amount per call: at most
// listScanBudget index entries and status reads, and whole records only for
// the matches. Paging on from the cursor finds every match.
func TestStoreListFilterCostIsBounded(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		b.start(t, "rare-old")
		b.fire(t, "rare-old", "cancel")
		b.clock.Add(time.Second)
		b.fillIndex(t, 2*listScanBudget+500)
		b.clock.Add(time.Second)
		b.start(t, "rare-new")
		b.fire(t, "rare-new", "cancel")

		counter := newCommandCounter()
		rdb := b.r.Client(t)
		rdb.(*redis.Client).AddHook(counter)
		store := NewStore(rdb, StoreConfig{Clock: b.clock.Now, Retention: testRetention})
		t.Cleanup(store.Close)

		q := ListQuery{Status: StatusCancelled, Limit: 5}
		var found []string
		calls := 0
		for {
			insts, next, err := store.List(t.Context(), q)
			require.NoError(t, err)
			calls++
			found = append(found, ids(insts)...)
			counts, entries := counter.take()
			require.LessOrEqual(t, entries, listScanBudget, "index entries read by call %d", calls)
			require.LessOrEqual(t, counts["hmget"], listScanBudget, "status reads of call %d", calls)
			require.LessOrEqual(t, counts["hgetall"], len(insts), "whole records loaded by call %d", calls)
			if next == "" {
				break
			}
			require.Less(t, calls, 10, "paging ends")
			q.Cursor = next
		}
		require.Equal(t, []string{"rare-new", "rare-old"}, found)
		require.Equal(t, 3, calls, "2,502 entries take three calls of at most %d", listScanBudget)
	})
}

// Entries whose record expired are dropped from the index by a filtered
// list too.
func TestStoreListFilterDropsEntriesWithoutARecord(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		b.startMany(t, 3, 1, time.Second)
		require.NoError(t, b.rdb.Del(ctx, RecordKey("o-01"), HistoryKey("o-01")).Err()) // expired
		b.clock.Add(orphanGrace)

		got, next := b.list(t, ListQuery{Status: StatusRunning, Limit: 10})
		require.Equal(t, []string{"o-02", "o-00"}, got)
		require.Empty(t, next)
		require.Equal(t, int64(-1), b.score(t, IndexKey, "o-01"), "o-01 is dropped from the index")
	})
}
