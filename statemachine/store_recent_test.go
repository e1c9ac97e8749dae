package statemachine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// createVaried creates "v1-normal" (version 1), "v2-high" (version 2, high
// priority) and "v2-low" (version 2, low), a second apart, each with the
// customer of its input.
func (b *storeBundle) createVaried(t *testing.T) {
	t.Helper()
	r, err := OrderRegistry(OrderV2Options{}, 1)
	require.NoError(t, err)
	v2, err := r.Get(OrderWorkflow, 2)
	require.NoError(t, err)
	for _, c := range []struct {
		id, customer string
		def          *Definition
		prio         Priority
	}{
		{"v1-normal", "cust-a", b.def, ""},
		{"v2-high", "cust-b", v2, PriorityHigh},
		{"v2-low", "cust-a", v2, PriorityLow},
	} {
		n := b.newInstance(c.id)
		n.Definition, n.Priority = c.def, c.prio
		n.Input = []byte(`{"customer_id":"` + c.customer + `","amount_cents":1}`)
		require.True(t, b.createWith(t, n).Created)
		b.clock.Add(time.Second)
	}
}

func TestStoreListFiltersByVersionPriorityAndInput(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		b.createVaried(t)
		for _, tc := range []struct {
			q    ListQuery
			want []string
		}{
			{ListQuery{Version: 1}, []string{"v1-normal"}},
			{ListQuery{Version: 2}, []string{"v2-low", "v2-high"}},
			{ListQuery{Version: 3}, nil},
			{ListQuery{Priority: PriorityHigh}, []string{"v2-high"}},
			{ListQuery{Priority: PriorityNormal}, []string{"v1-normal"}},
			{ListQuery{InputField: "customer_id", InputValue: "cust-a"}, []string{"v2-low", "v1-normal"}},
			{ListQuery{InputField: "customer_id", InputValue: "cust-a", Version: 2}, []string{"v2-low"}},
			{ListQuery{InputField: "customer_id", InputValue: "nobody"}, nil},
			{ListQuery{InputField: "amount_cents", InputValue: "1"}, nil}, // not a string
			{ListQuery{Version: 2, Status: StatusRunning, State: OrderPending}, []string{"v2-low", "v2-high"}},
		} {
			t.Run(fmt.Sprintf("%+v", tc.q), func(t *testing.T) {
				tc.q.Limit = 10
				got, next := b.list(t, tc.q)
				require.Equal(t, tc.want, got)
				require.Empty(t, next)
			})
		}
	})
}

func TestStoreDigestsAndLoadMany(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		b.createVaried(t)
		before := b.load(t, "v1-normal")
		b.fire(t, "v1-normal", "start")

		ds, err := b.store.Digests(t.Context(), []string{"v1-normal", "gone", "v2-high"})
		require.NoError(t, err)
		require.Len(t, ds, 3)
		require.Nil(t, ds[1])
		require.Equal(t, Digest{
			ID: "v1-normal", Workflow: OrderWorkflow, Version: 1, Status: StatusRunning, State: OrderReserving,
			Priority: PriorityNormal, Created: before.Created, Updated: b.clock.Now().UTC(), Rev: before.Rev + 1,
		}, *ds[0])
		require.Equal(t, PriorityHigh, ds[2].Priority)
		require.Equal(t, 2, ds[2].Version)

		insts, err := b.store.LoadMany(t.Context(), []string{"v2-low", "gone"})
		require.NoError(t, err)
		require.Len(t, insts, 2)
		require.Equal(t, b.load(t, "v2-low"), insts[0])
		require.Nil(t, insts[1])
	})
}

func TestStoreEachRecent(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		// 1,203 instances, many sharing a creation time, so that batches
		// of 500 end in the middle of one time.
		b.startMany(t, 1203, 7, time.Millisecond)
		want, _ := b.listAll(t, ListQuery{Limit: 500})
		require.Len(t, want, 1203)
		var got []string
		batches := 0
		require.NoError(t, b.store.EachRecent(t.Context(), 5000, func(ds []*Digest) error {
			batches++
			require.LessOrEqual(t, len(ds), 500)
			for _, d := range ds {
				got = append(got, d.ID)
			}
			return nil
		}))
		require.Equal(t, want, got, "every instance once, newest first")
		require.Equal(t, 3, batches)

		got = nil
		require.NoError(t, b.store.EachRecent(t.Context(), 10, func(ds []*Digest) error {
			for _, d := range ds {
				got = append(got, d.ID)
			}
			return nil
		}))
		require.Equal(t, want[:10], got, "up to the limit")

		n, err := b.store.IndexSize(t.Context())
		require.NoError(t, err)
		require.EqualValues(t, 1203, n)

		stop := fmt.Errorf("stop")
		require.ErrorIs(t, b.store.EachRecent(t.Context(), 5000, func([]*Digest) error { return stop }), stop)
	})
}
