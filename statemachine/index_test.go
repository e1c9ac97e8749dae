package statemachine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTrimIndexDropsExpiredInstances(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		for i := range 7 {
			b.create(t, fmt.Sprintf("o%d", i))
			b.clock.Add(time.Millisecond)
		}
		// o1, o3 and o5 expired after their retention.
		require.NoError(t, b.rdb.Del(ctx, RecordKey("o1"), RecordKey("o3"), RecordKey("o5")).Err())

		// Instances created after the cut-off are not looked at.
		next, removed, err := b.store.TrimIndex(ctx, b.clock.Now().Add(-time.Hour), TrimCursor{}, 10)
		require.NoError(t, err)
		require.Zero(t, removed)
		require.Zero(t, next)

		// Two slices of three, then the end.
		cut := b.clock.Now().Add(time.Second)
		next, removed, err = b.store.TrimIndex(ctx, cut, TrimCursor{}, 3)
		require.NoError(t, err)
		require.Equal(t, 1, removed) // o1 among o0..o2
		require.NotZero(t, next)
		next, removed, err = b.store.TrimIndex(ctx, cut, next, 3)
		require.NoError(t, err)
		require.Equal(t, 2, removed) // o3 and o5 among o3..o5
		next, removed, err = b.store.TrimIndex(ctx, cut, next, 3)
		require.NoError(t, err)
		require.Zero(t, removed)
		require.Zero(t, next, "the end of the index resets the cursor")

		ids, err := b.rdb.ZRange(ctx, IndexKey, 0, -1).Result()
		require.NoError(t, err)
		require.Equal(t, []string{"o0", "o2", "o4", "o6"}, ids)
	})
}
