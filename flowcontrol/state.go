package flowcontrol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The states a provider shows (GET /v1/providers).
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half_open"
	StatePaused   = "paused"
)

// ErrUnknownProvider is returned for a provider flow control does not know.
var ErrUnknownProvider = errors.New("unknown provider")

// Provider is one provider's flow-control state, as GET /v1/providers
// shows it.
type Provider struct {
	Name string `json:"name"`
	// State is closed, open, half_open or paused (an operator's pause
	// shows over the breaker's state).
	State string `json:"state"`
	// RateLimitRPS is the rate limit in calls a second, the recovery
	// ramp's while it ramps; 0 when there is none.
	RateLimitRPS float64 `json:"rate_limit_rps"`
	// InFlight counts the attempts calling the provider now.
	InFlight int64 `json:"in_flight"`
	// ErrorRate is the share of errors among the calls of the breaker's
	// window (0 with none).
	ErrorRate float64 `json:"error_rate"`
	// OpenedAt is when the circuit opened, while it is open or half-open.
	OpenedAt *time.Time `json:"opened_at"`
}

// Admin reads and changes the providers' flow-control state: the API's
// GET /v1/providers and POST /v1/providers/{name}/pause and /resume.
type Admin struct {
	rdb       redis.UniversalClient
	providers []string
	now       func() time.Time
}

// NewAdmin returns an Admin of providers (nil: DefaultProviders) over rdb.
func NewAdmin(rdb redis.UniversalClient, providers []string) *Admin {
	if len(providers) == 0 {
		providers = DefaultProviders
	}
	return &Admin{rdb: rdb, providers: providers, now: time.Now}
}

// Providers returns the names of the providers it knows.
func (a *Admin) Providers() []string { return slices.Clone(a.providers) }

// List returns every provider's state.
func (a *Admin) List(ctx context.Context) ([]Provider, error) {
	out := make([]Provider, 0, len(a.providers))
	for _, p := range a.providers {
		s, err := a.Get(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Get returns one provider's state, or ErrUnknownProvider.
func (a *Admin) Get(ctx context.Context, name string) (Provider, error) {
	if !slices.Contains(a.providers, name) {
		return Provider{}, fmt.Errorf("%w %q", ErrUnknownProvider, name)
	}
	k := keysOfProvider(name)
	now := a.now()
	var state, stats *redis.MapStringStringCmd
	var inflight *redis.IntCmd
	if _, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		state = p.HGetAll(ctx, k.state)
		inflight = p.ZCount(ctx, k.inflight, strconv.FormatInt(now.UnixMilli(), 10), "+inf")
		stats = p.HGetAll(ctx, k.stats)
		return nil
	}); err != nil {
		return Provider{}, fmt.Errorf("reading the state of %s: %w", name, err)
	}
	return describe(name, state.Val(), stats.Val(), inflight.Val(), now), nil
}

// Pause stops every step that calls the provider, across all orders and
// workers, from beginning an attempt until Resume; steps already running
// finish. No attempt is used while it is paused.
func (a *Admin) Pause(ctx context.Context, name string) (Provider, error) {
	return a.set(ctx, name, func(p redis.Pipeliner, key string) {
		p.HSet(ctx, key, "paused", "1", "paused_at", strconv.FormatInt(a.now().UnixMilli(), 10))
	})
}

// Resume lifts a Pause.
func (a *Admin) Resume(ctx context.Context, name string) (Provider, error) {
	return a.set(ctx, name, func(p redis.Pipeliner, key string) { p.HDel(ctx, key, "paused", "paused_at") })
}

func (a *Admin) set(ctx context.Context, name string, change func(p redis.Pipeliner, key string)) (Provider, error) {
	if !slices.Contains(a.providers, name) {
		return Provider{}, fmt.Errorf("%w %q", ErrUnknownProvider, name)
	}
	if _, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		change(p, keysOfProvider(name).state)
		return nil
	}); err != nil {
		return Provider{}, fmt.Errorf("changing the state of %s: %w", name, err)
	}
	return a.Get(ctx, name)
}

// describe computes a provider's state from its Redis hashes.
func describe(name string, st, stats map[string]string, inflight int64, now time.Time) Provider {
	num := func(m map[string]string, k string) float64 {
		v, _ := strconv.ParseFloat(m[k], 64)
		return v
	}
	at := func(k string) time.Time { return time.UnixMilli(int64(num(st, k))) }
	p := Provider{Name: name, State: StateClosed, InFlight: inflight}
	switch {
	case st["paused"] == "1":
		p.State = StatePaused
	case st["state"] == StateOpen && now.Before(at("open_until")):
		p.State = StateOpen
	case st["state"] == StateOpen, st["state"] == StateHalfOpen:
		p.State = StateHalfOpen // an open circuit whose wait is over lets its next attempt probe
	}
	if st["opened_at"] != "" && (st["state"] == StateOpen || st["state"] == StateHalfOpen) {
		t := at("opened_at").UTC()
		p.OpenedAt = &t
	}
	p.RateLimitRPS = num(st, "cfg_rps")
	if ramp := time.Duration(num(st, "cfg_ramp_ms")) * time.Millisecond; ramp > 0 && st["closed_at"] != "" {
		if elapsed := now.Sub(at("closed_at")); elapsed >= 0 && elapsed < ramp {
			r := num(st, "cfg_ramp_start") * math.Pow(2, float64(elapsed)/float64(max(ramp/6, time.Millisecond)))
			if p.RateLimitRPS == 0 || r < p.RateLimitRPS {
				p.RateLimitRPS = math.Floor(max(r, 1))
			}
		}
	}
	window := time.Duration(num(stats, "window_ms")) * time.Millisecond
	bucket := time.Duration(num(stats, "bucket_ms")) * time.Millisecond
	if window <= 0 || bucket <= 0 {
		window, bucket = 10*time.Second, time.Second
	}
	since := int64(num(st, "since"))
	first := now.Add(-window).UnixMilli() / bucket.Milliseconds()
	var calls, errs float64
	for f, v := range stats {
		b, kind, ok := strings.Cut(f, ":")
		bn, err := strconv.ParseInt(b, 10, 64)
		if !ok || err != nil || bn <= first || bn*bucket.Milliseconds() < since {
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		switch kind {
		case "n":
			calls += n
		case "e":
			errs += n
		}
	}
	if calls > 0 {
		p.ErrorRate = math.Round(errs/calls*1000) / 1000
	}
	return p
}

// Publish writes the limits this worker was given into each provider's
// state, so that GET /v1/providers (in another process) can show them.
// When workers disagree, the last one started is shown.
func (f *Flow) Publish(ctx context.Context) error {
	b := f.cfg.Breaker
	_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, name := range f.cfg.Providers {
			fields := []any{"cfg_rps", f.cfg.Rates[name].PerSecond, "cfg_burst", f.cfg.Rates[name].Burst,
				"cfg_window_ms", b.Window.Milliseconds(), "cfg_error_rate", b.ErrorRate,
				"cfg_ramp_ms", 0, "cfg_ramp_start", b.RampStart}
			if b.On() {
				fields[9] = b.Ramp.Milliseconds()
			}
			p.HSet(ctx, keysOfProvider(name).state, fields...)
		}
		return nil
	})
	return err
}
