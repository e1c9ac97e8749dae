package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
)

// A token gets its burst, then 429 with Retry-After; other tokens keep
// theirs, and the limit holds across API processes sharing Redis.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		// One request a second after a burst of 3: the test takes far less than
		// a second, so nothing refills meanwhile.
		cfg := api.Config{Tokens: testTokens, RateLimit: 1, RateBurst: 3}
		one := setupConfig(t, r.Client(t), cfg, api.Deps{})
		other := setupConfig(t, r.Client(t), cfg, api.Deps{})
		list := func(b *testBundle, tok api.Token) *response {
			return b.do(http.MethodGet, "/v1/orders", "", bearer(tok)...)
		}

		for range 3 {
			require.Equal(t, http.StatusOK, list(one, reader).Code)
		}
		res := list(one, reader)
		p := requireProblem(t, res, http.StatusTooManyRequests)
		require.Contains(t, p.Type, "rate-limited")
		requireRetryAfter(t, res)
		requireProblem(t, list(other, reader), http.StatusTooManyRequests)

		require.Equal(t, http.StatusOK, list(other, admin).Code, "every token has its own limit")
		require.Equal(t, http.StatusOK, one.get("/healthz").Code, "health is not limited")
	})
}

func TestRateLimitOff(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, api.Config{RateLimit: -1, RateBurst: 1})
	for range 20 {
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/orders", "", bearer(reader)...).Code)
	}
}

// Without tokens nothing is rate limited (the API is on loopback only).
func TestRateLimitNeedsATokenToCount(t *testing.T) {
	t.Parallel()
	b := setupConfig(t, redistest.New(t, redistest.BackendMiniredis).Client(t), api.Config{RateLimit: 1, RateBurst: 1}, api.Deps{})
	for range 20 {
		require.Equal(t, http.StatusOK, b.get("/v1/orders").Code)
	}
}
