package statemachine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// begin claims key for a request with fingerprint fp creating instance id,
// in flight for a minute, and checks the outcome and the owning instance.
func (b *storeBundle) begin(t *testing.T, key, fp, id string, want IdempotencyOutcome, wantID string) {
	t.Helper()
	got, gotID, err := b.store.BeginIdempotent(t.Context(), key, fp, id, time.Minute)
	require.NoError(t, err)
	require.Equal(t, [2]string{string(want), wantID}, [2]string{string(got), gotID}, "outcome of %s with %s", key, fp)
}

func TestStoreIdempotency(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		key := IdempotencyKey(HashIdempotencyKey("k1"))

		b.begin(t, "k1", "fp1", "o1", IdempotencyNew, "o1")
		b.requireTTL(t, key, time.Minute)
		b.begin(t, "k1", "fp1", "o2", IdempotencyInFlight, "o1")
		b.begin(t, "k1", "fp2", "o3", IdempotencyMismatch, "o1")

		require.NoError(t, b.store.EndIdempotent(ctx, "k1", "fp2", true, time.Hour))
		b.begin(t, "k1", "fp1", "o2", IdempotencyInFlight, "o1") // another body cannot settle the claim

		require.NoError(t, b.store.EndIdempotent(ctx, "k1", "fp1", true, 24*time.Hour))
		b.requireTTL(t, key, 24*time.Hour)
		b.begin(t, "k1", "fp1", "o2", IdempotencyDone, "o1")
		b.begin(t, "k1", "fp2", "o2", IdempotencyMismatch, "o1")

		require.NoError(t, b.store.EndIdempotent(ctx, "k1", "fp1", false, 0))
		b.begin(t, "k1", "fp1", "o2", IdempotencyDone, "o1") // a settled key stays settled

		b.begin(t, "k2", "fp1", "o4", IdempotencyNew, "o4")
		require.NoError(t, b.store.EndIdempotent(ctx, "k2", "fp1", false, time.Hour))
		b.requireNoKeys(t, "an aborted claim is forgotten", IdempotencyKey(HashIdempotencyKey("k2")))
		b.begin(t, "k2", "fp2", "o5", IdempotencyNew, "o5")

		require.NoError(t, b.store.EndIdempotent(ctx, "never-claimed", "fp1", true, time.Hour))
		b.requireNoKeys(t, "settling a key nobody claimed writes nothing", IdempotencyKey(HashIdempotencyKey("never-claimed")))
	})
}

func TestStoreIdempotencyClaimExpires(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		ctx := t.Context()
		inFlight := 150 * time.Millisecond
		outcome, _, err := b.store.BeginIdempotent(ctx, "k1", "fp1", "o1", inFlight)
		require.NoError(t, err)
		require.Equal(t, IdempotencyNew, outcome)
		key := IdempotencyKey(HashIdempotencyKey("k1"))
		if b.r.Mini != nil {
			require.Equal(t, inFlight, b.r.Mini.TTL(key))
			b.r.Mini.FastForward(inFlight)
		} else {
			ttl, err := b.rdb.PTTL(ctx, key).Result()
			require.NoError(t, err)
			require.Positive(t, ttl)
			require.LessOrEqual(t, ttl, inFlight)
		}
		// A crashed request's claim lapses and the key may be used again.
		require.Eventually(t, func() bool {
			outcome, _, err := b.store.BeginIdempotent(ctx, "k1", "fp1", "o2", time.Minute)
			return err == nil && outcome == IdempotencyNew
		}, 5*time.Second, 10*time.Millisecond)
	})
}

func TestStoreIdempotencyConcurrentBegin(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, b *storeBundle) {
		const requests = 20
		type result struct {
			outcome IdempotencyOutcome
			id      string
		}
		results := concurrently(requests, func(i int) result {
			outcome, id, err := b.store.BeginIdempotent(t.Context(), "k1", "fp1", fmt.Sprint("o", i), time.Minute)
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
		require.Equal(t, map[IdempotencyOutcome]int{IdempotencyNew: 1, IdempotencyInFlight: requests - 1}, counts)
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
}
