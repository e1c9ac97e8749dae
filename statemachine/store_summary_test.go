package statemachine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStoreReadSummaries(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		b.start(t, "plain")
		n := b.newInstance("keyed")
		n.KeyHash = HashScopedIdempotencyKey("shop", "k1")
		b.createWith(t, n)
		b.fire(t, "keyed", "cancel")
		require.NoError(t, b.rdb.HSet(t.Context(), RecordKey("keyed"), fieldIncarnation, "3").Err())

		got, err := ReadSummaries(t.Context(), b.rdb, []string{"plain", "gone", "keyed"})
		require.NoError(t, err)
		created := b.clock.Now().UTC()
		require.Equal(t, []*Summary{
			{ID: "plain", Status: StatusRunning, State: OrderPending, Created: created, Incarnation: 1},
			nil,
			{ID: "keyed", Status: StatusCancelled, State: OrderCancelled, Created: created, KeyHash: n.KeyHash, Incarnation: 3},
		}, got)

		got, err = ReadSummaries(t.Context(), b.rdb, nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}
