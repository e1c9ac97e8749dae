package statemachine

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// finished is a live subscription to FinishedChannel.
type finished struct{ ch <-chan *redis.Message }

// subscribeFinished subscribes to FinishedChannel and returns once Redis has
// confirmed the subscription, so that nothing published later is missed.
func (b *storeBundle) subscribeFinished(t *testing.T) finished {
	t.Helper()
	sub := b.rdb.Subscribe(t.Context(), FinishedChannel)
	t.Cleanup(func() { _ = sub.Close() })
	_, err := sub.Receive(t.Context())
	require.NoError(t, err, "subscribing")
	return finished{ch: sub.Channel()}
}

// next returns the next ID published, failing the test if none comes.
func (f finished) next(t *testing.T) string {
	t.Helper()
	select {
	case msg := <-f.ch:
		require.Equal(t, FinishedChannel, msg.Channel)
		return msg.Payload
	case <-time.After(10 * time.Second):
		t.Fatal("no instance was published as finished")
		return ""
	}
}

// requireNone checks that nothing more is published for a while; it proves
// an absence, so a short wait is all it can do.
func (f finished) requireNone(t *testing.T) {
	t.Helper()
	select {
	case msg := <-f.ch:
		t.Fatalf("%s was published as finished", msg.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// watch watches instance id, which must exist, and returns its status.
func (b *storeBundle) watch(t *testing.T, id string) Status {
	t.Helper()
	st, err := b.store.Watch(t.Context(), id)
	require.NoError(t, err)
	return st
}

func TestStoreWatch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		in := b.start(t, "o1")
		require.Equal(t, StatusRunning, b.watch(t, "o1"))
		raw := b.raw(t, "o1")
		require.Equal(t, "1", raw.Record["w"], "the instance is marked watched")
		require.Equal(t, in, b.load(t, "o1"), "watching changes neither the revision nor the instance")
		require.Equal(t, StatusRunning, b.watch(t, "o1"), "watching twice is fine")
		require.Equal(t, raw, b.raw(t, "o1"))

		b.start(t, "o2")
		b.fire(t, "o2", "cancel")
		before := b.raw(t, "o2")
		require.Equal(t, StatusCancelled, b.watch(t, "o2"), "a finished instance reports how it ended")
		require.Equal(t, before, b.raw(t, "o2"), "a finished instance is not marked")
	})
}

// TestStoreWatchPublishesTheFinish: the transition that finishes a watched
// instance publishes its ID on FinishedChannel; no other write publishes.
// Messages on one subscription come in the order they were published, so
// receiving the watched instance's ID first proves that nothing written
// before its finish published.
func TestStoreWatchPublishesTheFinish(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		sub := b.subscribeFinished(t)
		for _, path := range []struct {
			status Status
			events []string
		}{
			{StatusCompleted, []string{"start", "reserved", "charged", "shipped"}},
			{StatusFailed, []string{"start", "reserved", "charge_failed", "released"}},
			{StatusCancelled, []string{"start", "cancel", "refunded", "release_cancelled"}},
			{StatusCancelled, []string{"cancel"}},
		} {
			watched, unwatched := "w-"+path.events[0]+"-"+string(path.status), "u-"+path.events[0]+"-"+string(path.status)
			b.start(t, watched)
			b.start(t, unwatched)
			require.Equal(t, StatusRunning, b.watch(t, watched))

			last := len(path.events) - 1
			in := b.fire(t, watched, path.events[:last]...) // running states publish nothing
			require.Equal(t, path.status, b.fire(t, unwatched, path.events...).Status, "an unwatched finish publishes nothing")

			end := b.transition(t, in, path.events[last])
			require.Equal(t, path.status, end.Status)
			stale := end
			stale.ExpectRev++
			_, err := b.store.Apply(t.Context(), stale)
			requireStale(t, err, in.State, in.Rev) // a lost write publishes nothing

			b.apply(t, end)
			require.Equal(t, watched, sub.next(t), "the finish of %s is published", watched)
		}
		sub.requireNone(t)
	})
}
