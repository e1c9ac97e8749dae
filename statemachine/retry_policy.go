package statemachine

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
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

// String renders the policy compactly, as kept in an instance record:
// "initial,max,coefficient,max-attempts", for example "200ms,10s,2,6". The
// jitter is always full.
func (p RetryPolicy) String() string {
	return fmt.Sprintf("%s,%s,%g,%d", p.InitialInterval, p.MaxInterval, p.Coefficient, p.MaxAttempts)
}

// ParseRetryPolicy reads what String wrote.
func ParseRetryPolicy(s string) (RetryPolicy, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return RetryPolicy{}, fmt.Errorf("retry policy %q: want initial,max,coefficient,max-attempts", s)
	}
	var p RetryPolicy
	var err error
	if p.InitialInterval, err = time.ParseDuration(parts[0]); err != nil {
		return RetryPolicy{}, fmt.Errorf("retry policy %q: %w", s, err)
	}
	if p.MaxInterval, err = time.ParseDuration(parts[1]); err != nil {
		return RetryPolicy{}, fmt.Errorf("retry policy %q: %w", s, err)
	}
	if p.Coefficient, err = strconv.ParseFloat(parts[2], 64); err != nil {
		return RetryPolicy{}, fmt.Errorf("retry policy %q: %w", s, err)
	}
	if p.MaxAttempts, err = strconv.Atoi(parts[3]); err != nil {
		return RetryPolicy{}, fmt.Errorf("retry policy %q: %w", s, err)
	}
	if p.InitialInterval <= 0 || p.MaxInterval <= 0 || p.Coefficient <= 0 || p.MaxAttempts <= 0 {
		return RetryPolicy{}, fmt.Errorf("retry policy %q: every part must be positive", s)
	}
	return p, nil
}
