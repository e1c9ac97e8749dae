package api

import (
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// rateLimiter limits each token's requests with GCRA in Redis
// (redis_rate), so the limit holds across API processes.
type rateLimiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
}

// newRateLimiter returns nil when the limit is off.
func newRateLimiter(rdb redis.UniversalClient, perSecond, burst int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimiter{
		limiter: redis_rate.NewLimiter(rdb),
		limit:   redis_rate.Limit{Rate: perSecond, Burst: burst, Period: time.Second},
	}
}

// rateLimitKey names a token's limiter state; redis_rate prefixes it with
// "rate:", so the Redis key is rate:of:token:<name>.
func rateLimitKey(token string) string { return statemachine.Prefix + "token:" + token }

// rateLimit answers 429 with Retry-After to a token over its limit. Requests
// without a token (authentication off) are not limited. When Redis fails
// the check, the request goes through and the failure is logged.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t := tokenOf(c)
		if s.limiter == nil || t == nil {
			return next(c)
		}
		res, err := s.limiter.limiter.Allow(c.Request().Context(), rateLimitKey(t.name), s.limiter.limit)
		switch {
		case err != nil:
			s.log.Warn("rate limit check failed; letting the request through", "token", t.name, "err", err)
		case res.Allowed == 0:
			return rateLimited(res.RetryAfter)
		}
		return next(c)
	}
}
