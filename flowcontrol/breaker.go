package flowcontrol

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/providers"
)

// The provider gate: pause, 429 holds, and the circuit breaker
// (scripts/gate.lua and scripts/record.lua).

// The verdicts of the gate.
const (
	verdictOK      = "ok"
	verdictPaused  = "paused"
	verdictHold    = "hold"
	verdictOpen    = "open"
	verdictProbing = "probing"
)

// gateResult is the gate's answer to one attempt.
type gateResult struct {
	verdict string
	// wait is how long the attempt should wait (hold, open, probing).
	wait time.Duration
	// probe is set when the attempt is the half-open circuit's probe.
	probe bool
	// ramp is how far into its recovery ramp the provider is, or -1.
	ramp time.Duration
	// transition is the breaker's move this call made, "from>to", or "".
	transition string
}

// gate asks the provider's gate whether an attempt may begin; an admitted
// attempt is marked in flight under attemptID. spare says the attempt's
// instance has most of its attempts left, so that it may be a probe: a
// probe likely fails, and should not use up an instance's last attempts.
// After a while (twice OpenFor) any attempt may probe.
func (f *Flow) gate(ctx context.Context, provider, attemptID string, spare bool) (gateResult, error) {
	k := keysOfProvider(provider)
	b := f.cfg.Breaker
	res, err := gateScript.Run(ctx, f.rdb, []string{k.state, k.inflight},
		attemptID, f.cfg.Lease.Milliseconds(), flag(b.On()), f.cfg.Lease.Milliseconds(), b.Ramp.Milliseconds(),
		flag(spare), (2 * b.OpenFor).Milliseconds()).Slice()
	if err != nil {
		return gateResult{}, fmt.Errorf("asking the %s gate: %w", provider, err)
	}
	if len(res) != 5 {
		return gateResult{}, fmt.Errorf("asking the %s gate: unexpected answer %v", provider, res)
	}
	g := gateResult{ramp: -1}
	g.verdict, _ = res[0].(string)
	waitMS, _ := res[1].(int64)
	probe, _ := res[2].(int64)
	ramp, _ := res[3].(int64)
	g.transition, _ = res[4].(string)
	g.wait, g.probe = time.Duration(waitMS)*time.Millisecond, probe == 1
	if ramp >= 0 {
		g.ramp = time.Duration(ramp) * time.Millisecond
	}
	return g, nil
}

// The outcomes an attempt reports to its provider's gate.
const (
	outcomeOK      = "ok"
	outcomeErr     = "err"
	outcomeLimited = "limited"
	outcomeNone    = "none"
)

// classify says how an attempt's error counts for its provider: what the
// breaker counts as an error (see BreakerConfig), and the hold a 429 asks
// for.
func classify(err error) (outcome string, hold time.Duration) {
	if err == nil {
		return outcomeOK, 0
	}
	if errors.Is(err, engine.ErrNotAttempted) {
		return outcomeNone, 0
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		// Not the provider's answer: our own failure (a bad input, a
		// panic, a stopping worker), which says nothing about it.
		return outcomeNone, 0
	}
	switch {
	case pe.Decline():
		return outcomeOK, 0 // a business answer: the provider works
	case pe.InProgress():
		return outcomeNone, 0 // an earlier call under the key still runs
	case pe.Status == 0 && errors.Is(pe.Err, context.Canceled):
		return outcomeNone, 0 // we gave up, not the provider
	case pe.Status == http.StatusTooManyRequests:
		return outcomeLimited, pe.RetryAfter
	}
	return outcomeErr, 0
}

// holdFullShare is the share of 429s among a provider's calls over the
// breaker's window from which a 429 holds the provider for its whole
// Retry-After; below it the hold is scaled down in proportion (a 429 among
// 20 calls holds for a tenth of its Retry-After). A provider over its real
// limit answers most calls 429 and is held in full at once; one that
// answers a stray 429 now and then (a lock it contends on, a blip) does
// not stop every worker each time. The attempt that got the 429 waits its
// whole Retry-After either way (its retry honours it).
const holdFullShare = 0.5

// record reports an admitted attempt's outcome to its provider's gate and
// returns the breaker's transition, if any.
func (f *Flow) record(ctx context.Context, provider, attemptID, outcome string, hold time.Duration, probe bool) (string, error) {
	k := keysOfProvider(provider)
	b := f.cfg.Breaker
	tr, err := recordScript.Run(ctx, f.rdb, []string{k.state, k.inflight, k.stats},
		attemptID, outcome, hold.Milliseconds(), flag(probe), flag(b.On()), b.ErrorRate, b.MinCalls,
		b.Window.Milliseconds(), b.bucket().Milliseconds(), b.OpenFor.Milliseconds(), b.MaxOpen.Milliseconds(), holdFullShare).Text()
	if err != nil {
		return "", fmt.Errorf("recording an outcome of %s: %w", provider, err)
	}
	return tr, nil
}

// flag is a boolean as a script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
