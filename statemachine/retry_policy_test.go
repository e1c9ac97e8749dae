package statemachine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryPolicyWithDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, RetryPolicy{
		InitialInterval: 200 * time.Millisecond,
		MaxInterval:     30 * time.Second,
		Coefficient:     2,
		MaxAttempts:     5,
	}, RetryPolicy{}.WithDefaults())

	set := RetryPolicy{InitialInterval: time.Second, MaxInterval: time.Minute, Coefficient: 1.5, MaxAttempts: 9}
	require.Equal(t, set, set.WithDefaults(), "set fields are kept")

	require.Equal(t, RetryPolicy{
		InitialInterval: 200 * time.Millisecond,
		MaxInterval:     time.Minute,
		Coefficient:     2,
		MaxAttempts:     5,
	}, RetryPolicy{MaxInterval: time.Minute}.WithDefaults(), "only zero fields are filled")
}

// backoffCeiling is min(Max, Initial*Coef^(attempt-1)), computed by repeated
// multiplication rather than math.Pow.
func backoffCeiling(p RetryPolicy, attempt int) time.Duration {
	p = p.WithDefaults()
	ceiling := float64(p.InitialInterval)
	for i := 1; i < attempt && ceiling < float64(p.MaxInterval); i++ {
		ceiling *= p.Coefficient
	}
	return time.Duration(min(ceiling, float64(p.MaxInterval)))
}

func TestRetryPolicyBackoff(t *testing.T) {
	t.Parallel()
	low := func() float64 { return 0 }
	high := func() float64 { return 0.999999 }

	for _, tc := range []struct {
		name string
		p    RetryPolicy
	}{
		{"defaults", RetryPolicy{}},
		{"forward steps", forwardRetry},
		{"compensation", compensationRetry},
		{"coefficient 3", RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second, Coefficient: 3}},
		{"initial above max", RetryPolicy{InitialInterval: time.Minute, MaxInterval: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for attempt := 1; attempt <= 40; attempt++ {
				ceiling := backoffCeiling(tc.p, attempt)
				require.Zero(t, tc.p.Backoff(attempt, low), "attempt %d: a draw of 0 waits 0", attempt)
				got := tc.p.Backoff(attempt, high)
				require.LessOrEqual(t, got, ceiling, "attempt %d", attempt)
				require.GreaterOrEqual(t, got, ceiling-ceiling/100_000, "attempt %d: a draw near 1 waits near the ceiling", attempt)
			}
		})
	}

	t.Run("exact values", func(t *testing.T) {
		t.Parallel()
		p := RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, Coefficient: 2}
		half := func() float64 { return 0.5 }
		for attempt, want := range map[int]time.Duration{
			0:  50 * time.Millisecond, // treated as the first attempt
			1:  50 * time.Millisecond,
			2:  100 * time.Millisecond,
			3:  200 * time.Millisecond,
			4:  400 * time.Millisecond,
			5:  500 * time.Millisecond, // capped at MaxInterval
			60: 500 * time.Millisecond,
		} {
			require.Equal(t, want, p.Backoff(attempt, half), "attempt %d", attempt)
		}
	})

	t.Run("cap", func(t *testing.T) {
		t.Parallel()
		p := RetryPolicy{}.WithDefaults()
		for _, attempt := range []int{10, 100, 5000} {
			require.Equal(t, time.Duration(0.999999*float64(p.MaxInterval)), p.Backoff(attempt, high), "attempt %d", attempt)
		}
	})

	t.Run("default jitter", func(t *testing.T) {
		t.Parallel()
		p := RetryPolicy{InitialInterval: time.Second, MaxInterval: time.Second}
		seen := map[time.Duration]bool{}
		for range 200 {
			got := p.Backoff(3, nil)
			require.GreaterOrEqual(t, got, time.Duration(0))
			require.Less(t, got, time.Second)
			seen[got] = true
		}
		require.Greater(t, len(seen), 1, "a nil rnd draws at random")
	})
}

func TestRetryPolicyExhausted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p        RetryPolicy
		attempts int
	}{
		{RetryPolicy{}, 5},
		{forwardRetry, 6},
		{RetryPolicy{MaxAttempts: 1}, 1},
	} {
		for attempt := 1; attempt <= tc.attempts+2; attempt++ {
			require.Equal(t, attempt >= tc.attempts, tc.p.Exhausted(attempt), "MaxAttempts %d, attempt %d", tc.p.MaxAttempts, attempt)
		}
	}
}

func TestRetryPolicyStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []RetryPolicy{forwardRetry, compensationRetry.WithDefaults(), RetryPolicy{}.WithDefaults(),
		{InitialInterval: 1500 * time.Microsecond, MaxInterval: time.Hour, Coefficient: 1.5, MaxAttempts: 100}} {
		got, err := ParseRetryPolicy(p.String())
		require.NoError(t, err, p.String())
		require.Equal(t, p, got)
	}
	for _, bad := range []string{"", "1s,2s,2", "x,2s,2,3", "1s,x,2,3", "1s,2s,x,3", "1s,2s,2,x", "0s,2s,2,3", "1s,2s,2,0"} {
		_, err := ParseRetryPolicy(bad)
		require.Error(t, err, bad)
	}
}
