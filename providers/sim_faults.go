package providers

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Default fault timings.
const (
	// DefaultTimeoutHold is how long a simulated timeout holds its response
	// at most when Faults.TimeoutHold is 0.
	DefaultTimeoutHold = 30 * time.Second
	// DefaultRetryAfter is the Retry-After of a simulated 429 when
	// Faults.RetryAfter is 0.
	DefaultRetryAfter = time.Second
)

// Faults are the failures a simulated provider injects. In JSON, durations
// are Go duration strings such as "250ms".
type Faults struct {
	// FailureRate is the share of calls, 0 to 1, answered 503 without
	// applying anything. Default 0.
	FailureRate float64
	// Latency is added to every call. Default 0.
	Latency time.Duration
	// TimeoutRate is the share of calls, 0 to 1, whose effect is applied
	// but whose response is never sent: it is held until the client gives
	// up, or TimeoutHold passes, and the connection is then dropped.
	// Default 0.
	TimeoutRate float64
	// TimeoutHold bounds how long a simulated timeout holds its response.
	// Default DefaultTimeoutHold (30s).
	TimeoutHold time.Duration
	// RateLimitRate is the share of calls, 0 to 1, answered 429 with
	// Retry-After, applying nothing. Default 0.
	RateLimitRate float64
	// RetryAfter is the Retry-After of a 429, sent as whole seconds, at
	// least 1. Default DefaultRetryAfter (1s).
	RetryAfter time.Duration
	// DeclineCustomers are declined permanently: payment answers their
	// charges 402 card_declined, shipping their shipments 422
	// undeliverable (a long-running one is accepted, and then fails
	// undeliverable). Default none.
	DeclineCustomers []string
	// DeclineSKUs are declined permanently: inventory answers reservations
	// holding them 409 out_of_stock, shipping answers shipments holding
	// them 422 undeliverable. Default none.
	DeclineSKUs []string
	// InProgressRate is the share of calls with a new key (one with no
	// answer yet), 0 to 1, that are held in progress: the key is marked in
	// progress in Redis, the response is held for InProgressHold, and then
	// the effect is applied and answered, usually to a client that gave up.
	// Meanwhile every call under the key, at any simulator on the same
	// Redis, is answered 409 idempotency_key_in_use with Retry-After: 1.
	// Close ends the holds early, applying their effects. Default 0.
	InProgressRate float64
	// InProgressHold is how long a call held in progress waits before
	// applying its effect. Default DefaultInProgressHold (6s), longer than
	// the worker's default provider timeout.
	InProgressHold time.Duration
	// StrayRate is the share of calls, 0 to 1, answered with a stray answer
	// that is no decline, 401 unauthorized or 404 not_found on a coin flip,
	// applying nothing. Default 0.
	StrayRate float64
	// Broken are deliberate misbehaviours, for proving that the audit
	// catches a provider that breaks the contract: BrokenIgnoreKeys,
	// BrokenApplyDeclines, BrokenDropCompensations, by name, as in
	// {"broken":["ignore-keys"]}. Default none.
	Broken []string

	// OutOfStockWarehouses, for inventory, are warehouses that answer
	// every reservation 409 out_of_stock. Default none.
	OutOfStockWarehouses []string
	// ShipmentDuration, for shipping, is how long a shipment asked for
	// with Prefer: respond-async takes to deliver: it is answered 202 at
	// once and progresses meanwhile (GET /shipping/shipments/{id}). 0
	// answers such calls at once, 200, as every other. Default 0.
	ShipmentDuration time.Duration
	// ReviewCustomers and RejectCustomers, for risk, are customers whose
	// orders are assessed review and reject. Default none.
	ReviewCustomers, RejectCustomers []string
	// ReviewAboveCents and RejectAboveCents, for risk, make orders whose
	// amount_cents is above them assessed review and reject; 0 is off. A
	// reject rule wins over a review rule; no rule matching approves.
	// Default 0.
	ReviewAboveCents, RejectAboveCents int64
}

// WithDefaults returns the faults with their zero durations set to their
// defaults.
func (f Faults) WithDefaults() Faults {
	f.TimeoutHold = cmp.Or(f.TimeoutHold, DefaultTimeoutHold)
	f.RetryAfter = cmp.Or(f.RetryAfter, DefaultRetryAfter)
	f.InProgressHold = cmp.Or(f.InProgressHold, DefaultInProgressHold)
	return f
}

// Validate reports the first field out of range.
func (f Faults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"FailureRate", f.FailureRate}, {"TimeoutRate", f.TimeoutRate}, {"RateLimitRate", f.RateLimitRate},
		{"InProgressRate", f.InProgressRate}, {"StrayRate", f.StrayRate},
	} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("providers: Faults.%s must be between 0 and 1, got %v", r.name, r.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Latency", f.Latency}, {"TimeoutHold", f.TimeoutHold}, {"RetryAfter", f.RetryAfter},
		{"InProgressHold", f.InProgressHold}, {"ShipmentDuration", f.ShipmentDuration},
	} {
		if d.v < 0 {
			return fmt.Errorf("providers: Faults.%s must not be negative, got %v", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"ReviewAboveCents", f.ReviewAboveCents}, {"RejectAboveCents", f.RejectAboveCents}} {
		if n.v < 0 {
			return fmt.Errorf("providers: Faults.%s must not be negative, got %d", n.name, n.v)
		}
	}
	return validateBroken(f.Broken)
}

// clamped returns the faults with every field forced into its range.
func (f Faults) clamped() Faults {
	clampRate := func(r float64) float64 {
		if !(r >= 0) { // NaN too
			return 0
		}
		return min(r, 1)
	}
	f.FailureRate = clampRate(f.FailureRate)
	f.TimeoutRate = clampRate(f.TimeoutRate)
	f.RateLimitRate = clampRate(f.RateLimitRate)
	f.InProgressRate = clampRate(f.InProgressRate)
	f.StrayRate = clampRate(f.StrayRate)
	f.Latency = max(f.Latency, 0)
	f.TimeoutHold = max(f.TimeoutHold, 0)
	f.RetryAfter = max(f.RetryAfter, 0)
	f.InProgressHold = max(f.InProgressHold, 0)
	f.ShipmentDuration = max(f.ShipmentDuration, 0)
	f.ReviewAboveCents = max(f.ReviewAboveCents, 0)
	f.RejectAboveCents = max(f.RejectAboveCents, 0)
	f.Broken = knownBroken(f.Broken)
	return f
}

// faultsJSON is the JSON form of Faults. The fields of one provider only
// are left out while zero.
type faultsJSON struct {
	FailureRate      float64      `json:"failure_rate"`
	Latency          jsonDuration `json:"latency"`
	TimeoutRate      float64      `json:"timeout_rate"`
	TimeoutHold      jsonDuration `json:"timeout_hold"`
	RateLimitRate    float64      `json:"rate_limit_rate"`
	RetryAfter       jsonDuration `json:"retry_after"`
	DeclineCustomers []string     `json:"decline_customers"`
	DeclineSKUs      []string     `json:"decline_skus"`
	InProgressRate   float64      `json:"in_progress_rate"`
	InProgressHold   jsonDuration `json:"in_progress_hold"`
	StrayRate        float64      `json:"stray_rate"`
	Broken           []string     `json:"broken"`

	OutOfStockWarehouses []string     `json:"out_of_stock_warehouses,omitempty"`
	ShipmentDuration     jsonDuration `json:"shipment_duration,omitempty"`
	ReviewCustomers      []string     `json:"review_customers,omitempty"`
	RejectCustomers      []string     `json:"reject_customers,omitempty"`
	ReviewAboveCents     int64        `json:"review_above_cents,omitempty"`
	RejectAboveCents     int64        `json:"reject_above_cents,omitempty"`
}

// MarshalJSON implements json.Marshaler, writing durations as strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		FailureRate:      f.FailureRate,
		Latency:          jsonDuration(f.Latency),
		TimeoutRate:      f.TimeoutRate,
		TimeoutHold:      jsonDuration(f.TimeoutHold),
		RateLimitRate:    f.RateLimitRate,
		RetryAfter:       jsonDuration(f.RetryAfter),
		DeclineCustomers: nonNil(f.DeclineCustomers),
		DeclineSKUs:      nonNil(f.DeclineSKUs),
		InProgressRate:   f.InProgressRate,
		InProgressHold:   jsonDuration(f.InProgressHold),
		StrayRate:        f.StrayRate,
		Broken:           nonNil(f.Broken),

		OutOfStockWarehouses: f.OutOfStockWarehouses,
		ShipmentDuration:     jsonDuration(f.ShipmentDuration),
		ReviewCustomers:      f.ReviewCustomers,
		RejectCustomers:      f.RejectCustomers,
		ReviewAboveCents:     f.ReviewAboveCents,
		RejectAboveCents:     f.RejectAboveCents,
	})
}

// UnmarshalJSON implements json.Unmarshaler. Durations are Go duration
// strings, or numbers of nanoseconds; absent fields are zero.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*f = Faults{
		FailureRate:      j.FailureRate,
		Latency:          time.Duration(j.Latency),
		TimeoutRate:      j.TimeoutRate,
		TimeoutHold:      time.Duration(j.TimeoutHold),
		RateLimitRate:    j.RateLimitRate,
		RetryAfter:       time.Duration(j.RetryAfter),
		DeclineCustomers: j.DeclineCustomers,
		DeclineSKUs:      j.DeclineSKUs,
		InProgressRate:   j.InProgressRate,
		InProgressHold:   time.Duration(j.InProgressHold),
		StrayRate:        j.StrayRate,
		Broken:           j.Broken,

		OutOfStockWarehouses: j.OutOfStockWarehouses,
		ShipmentDuration:     time.Duration(j.ShipmentDuration),
		ReviewCustomers:      j.ReviewCustomers,
		RejectCustomers:      j.RejectCustomers,
		ReviewAboveCents:     j.ReviewAboveCents,
		RejectAboveCents:     j.RejectAboveCents,
	}
	return nil
}

// nonNil returns s, or an empty slice for nil, so that JSON shows [].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// jsonDuration is a time.Duration written as a Go duration string.
type jsonDuration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string, or a number of nanoseconds.
func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("duration must be a string such as \"250ms\": %s", b)
		}
		*d = jsonDuration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = jsonDuration(v)
	return nil
}

// faultState is one provider's faults, ready for lookups. It is never
// changed once built; SetFaults swaps in a new one.
type faultState struct {
	Faults
	customers  map[string]bool
	skus       map[string]bool
	warehouses map[string]bool // out of stock
	risk       riskRules
	// The broken modes.
	ignoreKeys, applyDeclines, dropCompensations bool
}

func newFaultState(f Faults) *faultState {
	f = f.WithDefaults()
	f.DeclineCustomers = slices.Clone(f.DeclineCustomers)
	f.DeclineSKUs = slices.Clone(f.DeclineSKUs)
	f.Broken = slices.Clone(f.Broken)
	f.OutOfStockWarehouses = slices.Clone(f.OutOfStockWarehouses)
	f.ReviewCustomers = slices.Clone(f.ReviewCustomers)
	f.RejectCustomers = slices.Clone(f.RejectCustomers)
	return &faultState{
		Faults: f, customers: setOf(f.DeclineCustomers), skus: setOf(f.DeclineSKUs),
		warehouses: setOf(f.OutOfStockWarehouses),
		risk: riskRules{
			reviewCustomers: setOf(f.ReviewCustomers), rejectCustomers: setOf(f.RejectCustomers),
			reviewAbove: f.ReviewAboveCents, rejectAbove: f.RejectAboveCents,
		},
		ignoreKeys:        slices.Contains(f.Broken, BrokenIgnoreKeys),
		applyDeclines:     slices.Contains(f.Broken, BrokenApplyDeclines),
		dropCompensations: slices.Contains(f.Broken, BrokenDropCompensations),
	}
}

// setOf returns the members of list as a set.
func setOf(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}

// declinesAnySKU reports whether one of items has a declined SKU.
func (s *faultState) declinesAnySKU(items []Item) bool {
	return slices.ContainsFunc(items, func(it Item) bool { return s.skus[it.SKU] })
}

// lockedRand is a random source safe for concurrent use.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newLockedRand seeds a source; seed 0 picks a random seed.
func newLockedRand(seed uint64) *lockedRand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// hit reports true with probability p.
func (l *lockedRand) hit(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64() < p
}
