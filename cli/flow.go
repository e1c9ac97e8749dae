package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/flowcontrol"
)

// flowFlags are the flow-control settings of a worker (worker, dev): rate
// limits per provider, concurrency limits per key, circuit breakers.
// Nothing is on unless a flag turns it on.
type flowFlags struct {
	rps, burst map[string]*int
	limits     limitsFlag
	gate       bool
	errorRate  float64
	window     time.Duration
	minCalls   int
	openFor    time.Duration
	ramp       time.Duration
}

func (f *flowFlags) register(fs *flag.FlagSet) {
	f.rps, f.burst = map[string]*int{}, map[string]*int{}
	for _, p := range flowcontrol.DefaultProviders {
		f.rps[p] = fs.Int(p+"-rps", 0, "a global rate limit on calls to the "+p+" provider, in calls a second, shared by every worker; 0 is none")
		f.burst[p] = fs.Int(p+"-burst", 1, "how many calls the "+p+" provider may get at once under --"+p+"-rps")
	}
	fs.Var(&f.limits, "limit", "a concurrency limit per key, <step>:<input field>=<n>, such as charge:customer_id=1: at most n attempts of the step "+
		"in flight per value of that top-level input field; repeatable (comma-separated in the variable)")
	fs.BoolVar(&f.gate, "flow-gate", false, "put every provider's calls through its gate, without any limit: pausing providers by hand (POST /v1/providers/{name}/pause), "+
		"holding a provider after its 429, counting calls in flight; a breaker does the same, and a rate limit for its provider")
	fs.Float64Var(&f.errorRate, "breaker-error-rate", 0, "open a provider's circuit when its error rate over --breaker-window reaches this share (0..1); 0 is no breaker")
	fs.DurationVar(&f.window, "breaker-window", 10*time.Second, "the span a provider's error rate is counted over")
	fs.IntVar(&f.minCalls, "breaker-min-calls", 10, "the fewest calls in the window that can open a circuit")
	fs.DurationVar(&f.openFor, "breaker-open-for", 2*time.Second, "how long a circuit stays open before it lets a probe through; doubled by each failed probe, up to 30s")
	fs.DurationVar(&f.ramp, "breaker-ramp", 0, "how long traffic ramps back after a recovery, doubling from 5 calls a second (default: --breaker-window)")
}

// config returns the flow-control config; the zero Config when no flag
// turned anything on.
func (f *flowFlags) config() (flowcontrol.Config, error) {
	var c flowcontrol.Config
	var errs []error
	for _, p := range flowcontrol.DefaultProviders {
		rps, burst := *f.rps[p], *f.burst[p]
		switch {
		case rps < 0:
			errs = append(errs, fmt.Errorf("--%s-rps must be 0 (none) or positive, got %d", p, rps))
		case burst < 1:
			errs = append(errs, fmt.Errorf("--%s-burst must be at least 1, got %d", p, burst))
		case rps > 0:
			if c.Rates == nil {
				c.Rates = map[string]flowcontrol.Rate{}
			}
			c.Rates[p] = flowcontrol.Rate{PerSecond: rps, Burst: burst}
		}
	}
	for _, s := range f.limits {
		l, err := flowcontrol.ParseLimit(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--limit: %w", err))
			continue
		}
		c.Limits = append(c.Limits, l)
	}
	if !(f.errorRate >= 0 && f.errorRate <= 1) {
		errs = append(errs, fmt.Errorf("--breaker-error-rate must be between 0 and 1, got %v", f.errorRate))
	}
	if f.window <= 0 || f.openFor <= 0 || f.ramp < 0 || f.minCalls < 1 {
		errs = append(errs, errors.New("--breaker-window and --breaker-open-for must be positive, --breaker-ramp not negative, --breaker-min-calls at least 1"))
	}
	c.Gate = f.gate
	c.Breaker = flowcontrol.BreakerConfig{ErrorRate: f.errorRate, Window: f.window, MinCalls: f.minCalls, OpenFor: f.openFor, Ramp: f.ramp}
	if err := errors.Join(errs...); err != nil {
		return flowcontrol.Config{}, usageError{err}
	}
	if err := c.Validate(); err != nil {
		return flowcontrol.Config{}, usageError{err}
	}
	if !c.Enabled() {
		return flowcontrol.Config{}, nil
	}
	return c, nil
}

// limitsFlag is a repeatable flag whose every value may also hold several
// entries separated by commas (as its environment variable does).
type limitsFlag []string

func (l *limitsFlag) String() string { return strings.Join(*l, ",") }

func (l *limitsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
