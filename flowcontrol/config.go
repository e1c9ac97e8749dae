package flowcontrol

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The providers flow control knows: each is a state resource of the
// workflow definitions (statemachine.State.Resource).
const (
	ProviderInventory = "inventory"
	ProviderPayment   = "payment"
	ProviderShipping  = "shipping"
	ProviderRisk      = "risk"
)

// DefaultProviders lists the providers GET /v1/providers shows and the
// flags name: --<provider>-rps and --<provider>-burst.
var DefaultProviders = []string{ProviderInventory, ProviderPayment, ProviderShipping, ProviderRisk}

// Config configures flow control. The zero Config turns everything off
// (Enabled reports false), and then a worker sets no engine.FlowControl at
// all: nothing is paid for what is not configured. Every field's comment
// gives its default.
type Config struct {
	// Rates are global rate limits on the calls to each provider, shared
	// by every worker. Default none.
	Rates map[string]Rate
	// Limits are concurrency limits: at most Max attempts of Step in
	// flight per value of an input field. Default none.
	Limits []Limit
	// Breaker configures a circuit breaker on every provider. Default off.
	Breaker BreakerConfig
	// Gate puts every provider's calls through its gate: pausing the
	// provider by hand, holding it after a 429, counting the attempts in
	// flight for GET /v1/providers. A breaker does the same, and a rate
	// limit for its provider; a concurrency limit alone gates nothing.
	// Default false.
	Gate bool
	// Providers are the providers known to flow control. Default
	// DefaultProviders.
	Providers []string
	// Settles names the steps that may repeat another step's call to
	// settle it when it is in doubt (a refund repeats a charge whose
	// answer was lost): such an attempt also takes the settled step's
	// concurrency slots, and two rate-limit tokens. Default none; a worker
	// passes the order workflow's.
	Settles map[string]Settle
	// Lease is how long a slot or an in-flight mark lives unless its
	// attempt renews it (every third of it, while the step runs): a killed
	// worker's slot comes free within one lease. Default 5s.
	Lease time.Duration
	// WaiterTTL is how long a parked attempt keeps its place in line
	// without asking again; a parked instance asks again at least every
	// engine.Config.ParkRecheck. Default 1m.
	WaiterTTL time.Duration
	// PauseRecheck is how long a step of a paused provider waits before
	// it asks again. Default 2s.
	PauseRecheck time.Duration
	// ProbeWait is the longest a step waits while a half-open circuit's
	// probe is out. Default 500ms.
	ProbeWait time.Duration
	// JanitorInterval is how often one worker sweeps the lines of the
	// concurrency limits, waking the waiters whose slots came free when a
	// holder's lease ran out. Default 1s.
	JanitorInterval time.Duration
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
}

// Rate is a rate limit on one provider's calls, enforced with GCRA
// (go-redis/redis_rate) in Redis.
type Rate struct {
	// PerSecond is how many calls a second the provider gets, on average.
	PerSecond int
	// Burst is how many calls may go at once. Default 1.
	Burst int
}

// Limit is a concurrency limit: at most Max attempts of Step in flight for
// each value of the top-level input field Field (such as customer_id). An
// instance whose input lacks the field is not limited.
type Limit struct {
	Step  string
	Field string
	Max   int
}

// String returns the limit as ParseLimit reads it.
func (l Limit) String() string { return fmt.Sprintf("%s:%s=%d", l.Step, l.Field, l.Max) }

// Settle says that a step may repeat Step's call, under its key, while
// Step is in doubt: it was attempted and the instance has no Result.
type Settle struct {
	Step   string
	Result string
}

// BreakerConfig configures the circuit breakers. A breaker counts the
// outcomes of the calls to its provider over a sliding window (one bucket
// per tenth of it). Errors are 5xx answers, 408, 429, timeouts, connection
// errors, and answers the contract does not name (a 401, a gateway 404);
// successes and declines (business answers) count as calls that worked; an
// in-progress 409, which says an earlier call under the key still runs,
// and calls our own worker abandoned count for nothing.
type BreakerConfig struct {
	// ErrorRate opens the circuit when the share of errors over Window
	// reaches it, with at least MinCalls calls. 0 turns the breaker off.
	// Default 0.
	ErrorRate float64
	// Window is the span the error rate is counted over. Default 10s.
	Window time.Duration
	// MinCalls is the fewest calls in the window that can open the
	// circuit. Default 10.
	MinCalls int
	// OpenFor is how long the circuit stays open before its first probe;
	// each failed probe doubles it, up to MaxOpen. Default 2s.
	OpenFor time.Duration
	// MaxOpen bounds an open period. Default 30s.
	MaxOpen time.Duration
	// Ramp is how long traffic ramps back after a recovery: the rate
	// starts at RampStart calls a second and doubles every sixth of Ramp,
	// under the provider's own rate limit, if any. Default Window.
	Ramp time.Duration
	// RampStart is the rate, in calls a second, at which a recovered
	// provider's traffic restarts. Default 5.
	RampStart int
}

// On reports whether the breaker is configured.
func (b BreakerConfig) On() bool { return b.ErrorRate > 0 }

// withDefaults returns b with its zero fields set.
func (b BreakerConfig) withDefaults() BreakerConfig {
	b.Window = cmp.Or(b.Window, 10*time.Second)
	b.MinCalls = cmp.Or(b.MinCalls, 10)
	b.OpenFor = cmp.Or(b.OpenFor, 2*time.Second)
	b.MaxOpen = cmp.Or(b.MaxOpen, 30*time.Second)
	b.Ramp = cmp.Or(b.Ramp, b.Window)
	b.RampStart = cmp.Or(b.RampStart, 5)
	return b
}

// bucket is the width of one bucket of the error-rate window.
func (b BreakerConfig) bucket() time.Duration { return max(b.Window/10, time.Millisecond) }

// Enabled reports whether anything is configured. A worker without it
// sets no engine.FlowControl.
func (c Config) Enabled() bool {
	return c.Gate || len(c.Rates) > 0 || len(c.Limits) > 0 || c.Breaker.On()
}

// WithDefaults returns the config with its zero fields set.
func (c Config) WithDefaults() Config {
	c.Breaker = c.Breaker.withDefaults()
	if len(c.Providers) == 0 {
		c.Providers = DefaultProviders
	}
	c.Lease = cmp.Or(c.Lease, 5*time.Second)
	c.WaiterTTL = cmp.Or(c.WaiterTTL, time.Minute)
	c.PauseRecheck = cmp.Or(c.PauseRecheck, 2*time.Second)
	c.ProbeWait = cmp.Or(c.ProbeWait, 500*time.Millisecond)
	c.JanitorInterval = cmp.Or(c.JanitorInterval, time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	rates := make(map[string]Rate, len(c.Rates))
	for p, r := range c.Rates {
		r.Burst = cmp.Or(r.Burst, 1)
		rates[p] = r
	}
	c.Rates = rates
	return c
}

// Validate reports every field out of range, each error naming its field.
func (c Config) Validate() error {
	var errs []error
	providers := c.Providers
	if len(providers) == 0 {
		providers = DefaultProviders
	}
	for _, p := range slices.Sorted(maps.Keys(c.Rates)) {
		r := c.Rates[p]
		if !slices.Contains(providers, p) {
			errs = append(errs, fmt.Errorf("Rates: unknown provider %q (known: %s)", p, strings.Join(providers, ", ")))
		}
		if r.PerSecond < 1 {
			errs = append(errs, fmt.Errorf("Rates[%s].PerSecond must be at least 1, got %d", p, r.PerSecond))
		}
		if r.Burst < 0 {
			errs = append(errs, fmt.Errorf("Rates[%s].Burst must not be negative, got %d", p, r.Burst))
		}
	}
	seen := map[string]bool{}
	for i, l := range c.Limits {
		if err := l.validate(); err != nil {
			errs = append(errs, fmt.Errorf("Limits[%d]: %w", i, err))
		}
		k := l.Step + ":" + l.Field
		if seen[k] {
			errs = append(errs, fmt.Errorf("Limits[%d]: %s:%s is limited twice", i, l.Step, l.Field))
		}
		seen[k] = true
	}
	b := c.Breaker
	if !(b.ErrorRate >= 0 && b.ErrorRate <= 1) {
		errs = append(errs, fmt.Errorf("Breaker.ErrorRate must be between 0 and 1, got %v", b.ErrorRate))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Breaker.Window", b.Window}, {"Breaker.OpenFor", b.OpenFor}, {"Breaker.MaxOpen", b.MaxOpen}, {"Breaker.Ramp", b.Ramp},
		{"Lease", c.Lease}, {"WaiterTTL", c.WaiterTTL}, {"PauseRecheck", c.PauseRecheck}, {"ProbeWait", c.ProbeWait},
		{"JanitorInterval", c.JanitorInterval},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %s", d.name, d.v))
		}
	}
	if b.MinCalls < 0 || b.RampStart < 0 {
		errs = append(errs, fmt.Errorf("Breaker.MinCalls and Breaker.RampStart must not be negative"))
	}
	if c.Lease != 0 && c.Lease < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("Lease must be at least 100ms, got %s", c.Lease))
	}
	return errors.Join(errs...)
}

// nameRE is what a step or input field name may hold: it is part of Redis
// key names and of the --limit syntax.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func (l Limit) validate() error {
	switch {
	case !nameRE.MatchString(l.Step):
		return fmt.Errorf("step %q must be 1 to 64 of A-Z, a-z, 0-9, _, . and -", l.Step)
	case !nameRE.MatchString(l.Field):
		return fmt.Errorf("field %q must be 1 to 64 of A-Z, a-z, 0-9, _, . and -", l.Field)
	case l.Max < 1:
		return fmt.Errorf("%s:%s must allow at least 1, got %d", l.Step, l.Field, l.Max)
	}
	return nil
}

// ParseLimit reads a concurrency limit written "<step>:<input field>=<n>",
// such as "charge:customer_id=1".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	lhs, n, ok := strings.Cut(s, "=")
	step, field, ok2 := strings.Cut(lhs, ":")
	if !ok || !ok2 {
		return Limit{}, fmt.Errorf("limit %q: want <step>:<input field>=<n>, such as charge:customer_id=1", s)
	}
	max, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil {
		return Limit{}, fmt.Errorf("limit %q: %q is not a number", s, n)
	}
	l := Limit{Step: strings.TrimSpace(step), Field: strings.TrimSpace(field), Max: max}
	if err := l.validate(); err != nil {
		return Limit{}, fmt.Errorf("limit %q: %w", s, err)
	}
	return l, nil
}
