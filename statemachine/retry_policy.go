package statemachine

import (
	"cmp"
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how a step is retried. It lives with the step, not with
// the asynq task: the attempt count is kept in the instance record.
type RetryPolicy struct {
	// InitialInterval is the cap of the first backoff. Default 200ms.
	InitialInterval time.Duration
	// MaxInterval caps every backoff. Default 30s.
	MaxInterval time.Duration
	// Coefficient multiplies the cap after each attempt. Default 2.
	Coefficient float64
	// MaxAttempts is the number of attempts before the step fails; 0 means
	// the default of 5. Compensation steps ignore it and never give up.
	MaxAttempts int
}

// WithDefaults returns the policy with its zero fields set to the defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	p.InitialInterval = cmp.Or(p.InitialInterval, 200*time.Millisecond)
	p.MaxInterval = cmp.Or(p.MaxInterval, 30*time.Second)
	p.Coefficient = cmp.Or(p.Coefficient, 2)
	p.MaxAttempts = cmp.Or(p.MaxAttempts, 5)
	return p
}

// Backoff returns the wait before the attempt that follows attempt (1-based),
// with full jitter: a uniform draw in [0, min(MaxInterval,
// InitialInterval*Coefficient^(attempt-1))]. rnd returns a float in [0,1); nil
// means math/rand.
func (p RetryPolicy) Backoff(attempt int, rnd func() float64) time.Duration {
	p = p.WithDefaults()
	if rnd == nil {
		rnd = rand.Float64
	}
	ceiling := float64(p.InitialInterval) * math.Pow(p.Coefficient, float64(max(attempt-1, 0)))
	ceiling = math.Min(ceiling, float64(p.MaxInterval))
	return time.Duration(rnd() * ceiling)
}

// Exhausted reports whether attempt was the last one allowed.
func (p RetryPolicy) Exhausted(attempt int) bool {
	return attempt >= p.WithDefaults().MaxAttempts
}
