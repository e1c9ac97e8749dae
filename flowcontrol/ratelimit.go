package flowcontrol

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Rate limits, with GCRA in Redis (go-redis/redis_rate): every worker
// shares one limiter state per provider, and an attempt asks it right
// before it begins, so that the provider sees at most Burst calls at once
// and PerSecond a second on average.

// newLimiter returns a redis_rate limiter whose keys are ours as named
// (redis_rate prefixes them with "rate:"; unprefixed takes it off again).
func newLimiter(rdb redis.UniversalClient) *redis_rate.Limiter {
	return redis_rate.NewLimiter(unprefixed{rdb})
}

// allow takes tokens from the provider's rate limit, if it has one. It
// returns how long to wait when the limit holds the attempt back; 0 admits
// it.
func (f *Flow) allow(ctx context.Context, provider, instance string, tokens int) (time.Duration, error) {
	r, limited := f.cfg.Rates[provider]
	if !limited {
		return 0, nil
	}
	return f.take(ctx, provider, instance, keysOfProvider(provider).rate, redis_rate.Limit{Rate: r.PerSecond, Burst: r.Burst, Period: time.Second}, tokens)
}

// allowRamp takes tokens from the ramp that follows a provider's recovery,
// elapsed into it, when the ramp's rate is below the provider's own limit.
func (f *Flow) allowRamp(ctx context.Context, provider, instance string, elapsed time.Duration, tokens int) (time.Duration, error) {
	rate := f.rampRate(elapsed)
	if r, limited := f.cfg.Rates[provider]; limited && rate >= r.PerSecond {
		return 0, nil
	}
	return f.take(ctx, provider, instance, keysOfProvider(provider).ramp, redis_rate.Limit{Rate: rate, Burst: 1, Period: time.Second}, tokens)
}

// take takes tokens from one GCRA limit for an attempt of instance. An
// attempt it holds back gets its place in the provider's line of waiters
// (scripts/schedule.lua): with n waiters the last comes back after about n
// emission intervals, and asks about once, rather than at every interval.
// The line is first come, first served (scripts/line.lua): an attempt with
// a place waits for it, however often it asks, and a newcomer queues
// behind the waiters rather than taking the token of one whose turn came.
func (f *Flow) take(ctx context.Context, provider, instance, key string, limit redis_rate.Limit, tokens int) (time.Duration, error) {
	// A step that makes two calls takes two tokens, which the burst must
	// hold.
	limit.Burst = max(limit.Burst, tokens)
	pk := keysOfProvider(provider)
	interval := float64(limit.Period.Milliseconds()) / float64(limit.Rate)
	line, err := lineScript.Run(ctx, f.rdb, []string{pk.sched, pk.places}, instance, interval, tokens, maxScheduleAhead.Milliseconds()).Int64Slice()
	if err != nil || len(line) != 2 {
		return 0, fmt.Errorf("asking the %s rate limit's line: %v %w", provider, line, err)
	}
	if line[0] == 0 {
		return time.Duration(line[1]) * time.Millisecond, nil
	}
	res, err := f.limiter.AllowN(ctx, key, limit, tokens)
	if err != nil {
		return 0, fmt.Errorf("asking the %s rate limit: %w", provider, err)
	}
	if res.Allowed >= tokens {
		if line[1] == 1 {
			if err := unplaceScript.Run(ctx, f.rdb, []string{pk.places}, instance).Err(); err != nil {
				f.log.Debug("leaving the rate limit's line; the place lapses", "provider", provider, "err", err)
			}
		}
		return 0, nil
	}
	place, err := scheduleScript.Run(ctx, f.rdb, []string{pk.sched, pk.places}, interval, tokens, maxScheduleAhead.Milliseconds(),
		res.RetryAfter.Milliseconds(), instance).Int64()
	if err != nil {
		return 0, fmt.Errorf("asking the %s rate limit for a place: %w", provider, err)
	}
	return max(res.RetryAfter, time.Duration(place)*time.Millisecond, time.Millisecond), nil
}

// maxScheduleAhead bounds the place a rate-limited attempt is given in
// line: one that comes back earlier than its turn only asks again.
const maxScheduleAhead = 30 * time.Second

// rampRate is the rate, in calls a second, elapsed into a recovery: it
// starts at RampStart and doubles every sixth of the ramp.
func (f *Flow) rampRate(elapsed time.Duration) int {
	b := f.cfg.Breaker
	step := max(b.Ramp/6, time.Millisecond)
	r := float64(b.RampStart) * math.Pow(2, float64(elapsed)/float64(step))
	return int(min(max(r, 1), 1e9))
}

// unprefixed is the Redis client redis_rate calls, with the "rate:" prefix
// it puts on every key taken off again, so that flow control's keys all
// start with of:flow:.
type unprefixed struct{ redis.UniversalClient }

func stripRate(keys []string) []string {
	out := slices.Clone(keys)
	for i, k := range out {
		out[i] = strings.TrimPrefix(k, "rate:")
	}
	return out
}

func (u unprefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.Eval(ctx, script, stripRate(keys), args...)
}

func (u unprefixed) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.EvalSha(ctx, sha1, stripRate(keys), args...)
}

func (u unprefixed) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.EvalRO(ctx, script, stripRate(keys), args...)
}

func (u unprefixed) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.EvalShaRO(ctx, sha1, stripRate(keys), args...)
}

func (u unprefixed) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return u.UniversalClient.Del(ctx, stripRate(keys)...)
}
