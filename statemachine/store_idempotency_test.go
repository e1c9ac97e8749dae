package statemachine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// bindTTL is how long the tests keep a binding, as the API does.
const bindTTL = 24 * time.Hour

// bind binds the key whose hash is h for a request with fingerprint fp that
// would create instance id, and checks the outcome and the bound instance.
func (b *storeBundle) bind(t *testing.T, h, fp, id string, want IdempotencyOutcome, wantID string) {
	t.Helper()
	got, gotID, err := b.store.BindIdempotencyKey(t.Context(), h, fp, id, bindTTL)
	require.NoError(t, err)
	require.Equal(t, [2]string{string(want), wantID}, [2]string{string(got), gotID}, "outcome of %s with %s", h, fp)
}

func TestStoreIdempotencyBinding(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		h := HashScopedIdempotencyKey("", "k1")
		b.bind(t, h, "fp1", "o1", IdempotencyNew, "o1")
		b.requireTTL(t, IdempotencyKey(h), bindTTL)

		// A retry proposes a fresh instance ID; it gets the bound one.
		b.bind(t, h, "fp1", "o2", IdempotencySame, "o1")
		b.bind(t, h, "fp2", "o3", IdempotencyMismatch, "o1")
		b.bind(t, h, "fp1", "o4", IdempotencySame, "o1")
		b.requireTTL(t, IdempotencyKey(h), bindTTL) // a retry does not extend the binding

		other := HashScopedIdempotencyKey("", "k2")
		b.bind(t, other, "fp2", "o5", IdempotencyNew, "o5")

		bound, err := ReadBindings(t.Context(), b.rdb, []string{h, HashIdempotencyKey("never bound"), other})
		require.NoError(t, err)
		require.Equal(t, []string{"o1", "", "o5"}, bound)
		bound, err = ReadBindings(t.Context(), b.rdb, nil)
		require.NoError(t, err)
		require.Empty(t, bound)
	})
}

// A request that bound its key and then failed to create its instance (a
// Redis restart, a dropped connection) leaves the binding: the retry, with
// a fresh instance ID of its own, creates the first attempt's instance, and
// one instance exists.
func TestStoreIdempotencyBindingOutlivesAFailedCreate(t *testing.T) {
	t.Parallel()
	for _, backend := range redistest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			r := redistest.NewWith(t, backend, redistest.Options{AppendFsyncAlways: true})
			b := setupStore(t, r)
			h := HashScopedIdempotencyKey("", "retry-me")
			b.bind(t, h, "fp:first", "first", IdempotencyNew, "first")

			r.Stop() // the create never happens
			r.Start(t)
			require.Eventually(t, func() bool { return b.store.Ping(t.Context()) == nil },
				10*time.Second, 10*time.Millisecond, "the client reconnects")

			b.bind(t, h, "fp:first", "second", IdempotencySame, "first")
			n := b.newInstance("first")
			n.Fingerprint = "fp:first"
			require.True(t, b.createWith(t, n).Created)
			b.bind(t, h, "fp:first", "third", IdempotencySame, "first")
			got, _ := b.list(t, ListQuery{Limit: 10})
			require.Equal(t, []string{"first"}, got)
		})
	}
}

func TestStoreIdempotencyBindingExpires(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		ttl := 150 * time.Millisecond
		h := HashScopedIdempotencyKey("", "k1")
		outcome, _, err := b.store.BindIdempotencyKey(ctx, h, "fp1", "o1", ttl)
		require.NoError(t, err)
		require.Equal(t, IdempotencyNew, outcome)
		if b.r.Mini != nil {
			require.Equal(t, ttl, b.r.Mini.TTL(IdempotencyKey(h)))
			b.r.Mini.FastForward(ttl)
		}
		// After its TTL the key is free for a new request.
		require.Eventually(t, func() bool {
			outcome, id, err := b.store.BindIdempotencyKey(ctx, h, "fp2", "o2", time.Minute)
			return err == nil && outcome == IdempotencyNew && id == "o2"
		}, 5*time.Second, 10*time.Millisecond)
	})
}

func TestStoreIdempotencyConcurrentBinding(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		const requests = 20
		type result struct {
			outcome IdempotencyOutcome
			id      string
		}
		h := HashScopedIdempotencyKey("", "k1")
		results := concurrently(requests, func(i int) result {
			outcome, id, err := b.store.BindIdempotencyKey(t.Context(), h, "fp1", fmt.Sprint("o", i), bindTTL)
			if err != nil {
				outcome = IdempotencyOutcome(err.Error())
			}
			return result{outcome, id}
		})

		var winner string
		counts := map[IdempotencyOutcome]int{}
		owners := map[string]bool{}
		for _, r := range results {
			counts[r.outcome]++
			owners[r.id] = true
			if r.outcome == IdempotencyNew {
				winner = r.id
			}
		}
		require.Equal(t, map[IdempotencyOutcome]int{IdempotencyNew: 1, IdempotencySame: requests - 1}, counts)
		require.Equal(t, map[string]bool{winner: true}, owners, "every request learns the winner's instance")
	})
}

func TestHashIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := HashIdempotencyKey("order 42 / retry")
	require.Len(t, h, 32)
	require.Equal(t, h, HashIdempotencyKey("order 42 / retry"))
	require.NotEqual(t, h, HashIdempotencyKey("order 42 / retry "))
	require.Equal(t, "of:idem:{"+h+"}", IdempotencyKey(h))

	scoped := HashScopedIdempotencyKey("shop", "k")
	require.Equal(t, HashIdempotencyKey("shop\x00k"), scoped)
	require.NotEqual(t, scoped, HashScopedIdempotencyKey("other", "k"), "two callers, two keys")
	require.NotEqual(t, HashScopedIdempotencyKey("a", "bc"), HashScopedIdempotencyKey("ab", "c"))
}
