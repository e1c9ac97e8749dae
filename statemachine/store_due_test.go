package statemachine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// errLost marks a claim that another claimer won.
var errLost = errors.New("lost")

// due returns the due time of id in Unix ms, or -1 when it is not in the
// due index.
func (b *storeBundle) due(t *testing.T, id string) int64 {
	t.Helper()
	return b.score(t, DueKey, id)
}

func TestStoreDueBefore(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()
		b.createDue(t, "late", now.Add(20*time.Second))
		b.createDue(t, "soon", now.Add(5*time.Second))
		b.createDue(t, "edge", now.Add(10*time.Second))

		got, err := b.store.DueBefore(ctx, now.Add(10*time.Second), 10)
		require.NoError(t, err)
		require.Equal(t, []DueEntry{
			{ID: "soon", At: now.Add(5 * time.Second).UnixMilli()},
			{ID: "edge", At: now.Add(10 * time.Second).UnixMilli()},
		}, got, "due at or before, soonest first")

		got, err = b.store.DueBefore(ctx, now.Add(time.Hour), 1)
		require.NoError(t, err)
		require.Equal(t, []DueEntry{{ID: "soon", At: now.Add(5 * time.Second).UnixMilli()}}, got, "limit")

		got, err = b.store.DueBefore(ctx, now, 10)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func TestStoreClaimDue(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()
		b.createDue(t, "o1", now)
		entries, err := b.store.DueBefore(ctx, now, 10)
		require.NoError(t, err)
		require.Len(t, entries, 1)

		won := concurrently(2, func(i int) error {
			ok, err := b.store.ClaimDue(ctx, entries[0], now.Add(time.Duration(i+1)*time.Minute))
			if err == nil && !ok {
				err = errLost
			}
			return err
		})
		require.ElementsMatch(t, []error{nil, errLost}, won, "exactly one reaper takes the entry")
		next := b.due(t, "o1")
		require.Contains(t, []int64{now.Add(time.Minute).UnixMilli(), now.Add(2 * time.Minute).UnixMilli()}, next,
			"the winner moved the entry on")

		ok, err := b.store.ClaimDue(ctx, entries[0], now.Add(time.Hour))
		require.NoError(t, err)
		require.False(t, ok, "an entry read before it moved cannot be taken")
		require.Equal(t, next, b.due(t, "o1"))

		ok, err = b.store.ClaimDue(ctx, DueEntry{ID: "missing", At: now.UnixMilli()}, now.Add(time.Hour))
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, int64(-1), b.due(t, "missing"), "claiming adds nothing")
	})
}

func TestStoreDueWritesAreBatched(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()
		b.createDue(t, "o1", now)

		b.store.SetDue("o1", now.Add(time.Minute))
		b.store.SetDue("o2", now.Add(2*time.Minute))
		require.Equal(t, now.UnixMilli(), b.due(t, "o1"), "not written before a flush")
		require.Equal(t, int64(-1), b.due(t, "o2"))
		b.store.FlushDue()
		require.Equal(t, now.Add(time.Minute).UnixMilli(), b.due(t, "o1"))
		require.Equal(t, now.Add(2*time.Minute).UnixMilli(), b.due(t, "o2"))

		b.store.ForgetDue("o1")
		require.Equal(t, now.Add(time.Minute).UnixMilli(), b.due(t, "o1"), "not removed before a flush")
		b.store.FlushDue()
		require.Equal(t, int64(-1), b.due(t, "o1"))

		require.NoError(t, b.store.RemoveDue(ctx, "o2"))
		require.Equal(t, int64(-1), b.due(t, "o2"), "RemoveDue is not batched")
		require.NoError(t, b.store.RemoveDue(ctx, "o2"), "removing twice is fine")
	})
}

func TestStoreDueFollowsTheLease(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		now := b.clock.Now()
		in := b.start(t, "o1")

		// Taking a lease writes the due entry in the same round trip, not in
		// a batch: a worker that dies holding the lease is found when it ends.
		b.claim(t, "o1", "w1", now.Add(30*time.Second))
		require.Equal(t, now.Add(30*time.Second).UnixMilli(), b.due(t, "o1"), "Claim: due when the lease ends")

		ok, err := b.store.Renew(ctx, "o1", "w1", now.Add(45*time.Second))
		require.NoError(t, err)
		require.True(t, ok)
		b.store.FlushDue()
		require.Equal(t, now.Add(30*time.Second).UnixMilli(), b.due(t, "o1"), "Renew keeps the first lease's end")

		c := b.transition(t, in, "start")
		c.Lease, c.Token, c.KeepLease, c.LeaseUntil = LeaseAcquire, "w1", false, now.Add(time.Minute)
		b.apply(t, c)
		require.Equal(t, now.Add(time.Minute).UnixMilli(), b.due(t, "o1"), "Apply acquiring the lease")

		b.fire(t, "o1", "cancel", "refunded", "release_cancelled")
		b.store.FlushDue()
		require.Equal(t, int64(-1), b.due(t, "o1"), "a finished instance leaves the due index")
	})
}

// holdDueWrite is a go-redis hook that holds the first pipeline writing the
// due index until release is closed, and closes entered when it holds it.
type holdDueWrite struct {
	once             sync.Once
	entered, release chan struct{}
}

func (h *holdDueWrite) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *holdDueWrite) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *holdDueWrite) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if args := c.Args(); c.Name() == "zadd" && len(args) > 1 && args[1] == DueKey {
				h.once.Do(func() {
					close(h.entered)
					<-h.release
				})
			}
		}
		return next(ctx, cmds)
	}
}

// TestStoreFlushDueWaitsForTheFlusher: when FlushDue returns, every update
// made before it is in Redis, even one the background flusher took and is
// still writing.
func TestStoreFlushDueWaitsForTheFlusher(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupStoreConfig(t, r, StoreConfig{DueFlushInterval: time.Nanosecond})
		hold := &holdDueWrite{entered: make(chan struct{}), release: make(chan struct{})}
		b.rdb.AddHook(hold)
		at := b.clock.Now()

		b.store.SetDue("o1", at)
		select {
		case <-hold.entered: // the flusher took the update and is writing it
		case <-time.After(10 * time.Second):
			t.Fatal("the background flusher never wrote the update")
		}
		flushed := make(chan struct{})
		go func() {
			b.store.FlushDue()
			close(flushed)
		}()
		early := false
		select {
		case <-flushed:
			early = b.due(t, "o1") == -1
		case <-time.After(200 * time.Millisecond): // FlushDue waits for the write in flight
		}
		close(hold.release)
		<-flushed
		require.False(t, early, "FlushDue returned before the update made before it was written")
		require.Equal(t, at.UnixMilli(), b.due(t, "o1"))
	})
}
