package audit

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/orderflow/orderflow/providers"
)

// The flow-control rules check the limits the workers ran with against
// what each provider saw: the simulators' call logs (SimConfig.CallLog),
// read as a stream in time order.
//
//   - No provider got more calls in any one second than its rate limit
//     allows: Burst at once, and PerSecond a second (rate_limit_exceeded).
//   - No customer had more calls of one operation in flight at once than
//     its concurrency limit (concurrency_limit_exceeded). A call is in
//     flight from its arrival until its answer was written or its caller
//     hung up.
const (
	RuleRateExceeded        = "rate_limit_exceeded"
	RuleConcurrencyExceeded = "concurrency_limit_exceeded"
)

// FlowLimits are the flow-control limits to check.
type FlowLimits struct {
	// Rates are the rate limits, by provider.
	Rates map[string]RateLimit
	// Concurrency are the concurrency limits per customer.
	Concurrency []ConcurrencyLimit
	// Jitter is how much the time from a worker's admission of a call to
	// its arrival at the provider may vary between calls (scheduling, the
	// write that begins the attempt, the network): the calls a limiter
	// admitted over 1s+Jitter may reach the provider within one second.
	// Default 50ms.
	Jitter time.Duration
}

// RateLimit is a provider's rate limit.
type RateLimit struct {
	PerSecond int
	Burst     int
}

// ConcurrencyLimit allows Max calls of Op at Provider in flight per
// customer (flowcontrol's Limit on the step that makes the call, by
// customer_id).
type ConcurrencyLimit struct {
	Provider string
	Op       string
	Max      int
}

// FlowReport is what the flow rules measured from the providers' side.
type FlowReport struct {
	// MaxPerSecond is, by provider, the most calls that arrived within any
	// one second.
	MaxPerSecond map[string]int `json:"max_per_second"`
	// MaxInFlight is, by "provider op", the most calls of one customer in
	// flight at once.
	MaxInFlight map[string]int `json:"max_in_flight"`
	// Calls counts the calls read, by provider.
	Calls map[string]int `json:"calls"`
	// Unfinished counts calls whose end was never logged (the simulator
	// stopped first); each counts as in flight for at most a minute.
	Unfinished int `json:"unfinished"`
}

// callHorizon is how far behind the newest event read an event must be
// before it is checked: the log's events may be appended out of time order
// by about as long as an append takes.
const callHorizon = 2 * time.Second

// lostCallAfter is how long a call without an end counts as in flight.
const lostCallAfter = time.Minute

// walkCalls checks the flow limits against the providers' call logs.
func (a *auditor) walkCalls(ctx context.Context) error {
	limits := a.cfg.Flow
	if limits == nil {
		return nil
	}
	log, ok := a.cfg.Ledger.(CallLog)
	if !ok {
		return fmt.Errorf("the ledger has no call log to check the flow limits against")
	}
	a.rep.Flow = &FlowReport{MaxPerSecond: map[string]int{}, MaxInFlight: map[string]int{}, Calls: map[string]int{}}
	provs := map[string]bool{}
	for p := range limits.Rates {
		provs[p] = true
	}
	for _, c := range limits.Concurrency {
		provs[c.Provider] = true
	}
	for _, p := range slices.Sorted(maps.Keys(provs)) {
		w := newCallWalker(a, p, limits)
		err := log.ScanCalls(ctx, p, func(ev providers.CallEvent) error { return w.push(ev) })
		if err == nil {
			err = w.drain()
		}
		if err != nil {
			return fmt.Errorf("checking the flow limits of %s: %w", p, err)
		}
	}
	return a.sink.checked()
}

// CallLog is a ledger that also keeps the providers' call logs (the
// simulators' does).
type CallLog interface {
	ScanCalls(ctx context.Context, provider string, fn func(providers.CallEvent) error) error
}

var _ CallLog = (*providers.Ledger)(nil)

// callWalker checks one provider's calls as they stream by.
type callWalker struct {
	a        *auditor
	provider string
	rate     *RateLimit
	bound    int // calls allowed within one second
	conc     map[string]int
	jitter   time.Duration

	pending eventHeap
	newest  time.Time

	// The rate check: arrivals within the last second, and whether the
	// current excess was reported.
	arrivals []time.Time
	overRate bool
	// The concurrency check: calls in flight per op and customer.
	open     map[string]map[string]time.Time // op\x00customer -> call -> start
	overConc map[string]bool
	calls    map[string]providers.CallEvent // call -> start, of open calls
	// started holds the calls that started lately, to skip an event
	// appended twice (an append retried after Redis lost the reply).
	started map[string]time.Time
	pruned  time.Time
}

func newCallWalker(a *auditor, provider string, l *FlowLimits) *callWalker {
	w := &callWalker{a: a, provider: provider, conc: map[string]int{}, jitter: cmp.Or(l.Jitter, 50*time.Millisecond),
		open: map[string]map[string]time.Time{}, overConc: map[string]bool{}, calls: map[string]providers.CallEvent{},
		started: map[string]time.Time{}}
	if r, ok := l.Rates[provider]; ok {
		w.rate = &r
		w.bound = max(r.Burst, 1) + int(float64(r.PerSecond)*(time.Second+w.jitter).Seconds())
	}
	for _, c := range l.Concurrency {
		if c.Provider == provider {
			w.conc[c.Op] = c.Max
		}
	}
	return w
}

// push takes the next event of the log; events old enough to be in order
// are checked.
func (w *callWalker) push(ev providers.CallEvent) error {
	heap.Push(&w.pending, ev)
	if ev.At.After(w.newest) {
		w.newest = ev.At
	}
	for w.pending.Len() > 0 && w.pending[0].At.Before(w.newest.Add(-callHorizon)) {
		if err := w.check(heap.Pop(&w.pending).(providers.CallEvent)); err != nil {
			return err
		}
	}
	return nil
}

// drain checks the events left.
func (w *callWalker) drain() error {
	for w.pending.Len() > 0 {
		if err := w.check(heap.Pop(&w.pending).(providers.CallEvent)); err != nil {
			return err
		}
	}
	w.a.rep.Flow.Unfinished += len(w.calls)
	return nil
}

func (w *callWalker) check(ev providers.CallEvent) error {
	w.expireLost(ev.At)
	if ev.Event == providers.CallEnd {
		if start, ok := w.calls[ev.Call]; ok {
			delete(w.calls, ev.Call)
			delete(w.open[start.Op+"\x00"+start.CustomerID], ev.Call)
		}
		return nil
	}
	if _, dup := w.started[ev.Call]; dup {
		return nil
	}
	w.started[ev.Call] = ev.At
	if ev.At.Sub(w.pruned) > 10*time.Second {
		for id, at := range w.started {
			if ev.At.Sub(at) > 2*lostCallAfter {
				delete(w.started, id)
			}
		}
		w.pruned = ev.At
	}
	w.a.rep.Flow.Calls[w.provider]++
	if err := w.checkRate(ev); err != nil {
		return err
	}
	limit, limited := w.conc[ev.Op]
	if !limited || ev.CustomerID == "" {
		return nil
	}
	w.calls[ev.Call] = ev
	k := ev.Op + "\x00" + ev.CustomerID
	if w.open[k] == nil {
		w.open[k] = map[string]time.Time{}
	}
	w.open[k][ev.Call] = ev.At
	n := len(w.open[k])
	name := w.provider + " " + ev.Op
	w.a.rep.Flow.MaxInFlight[name] = max(w.a.rep.Flow.MaxInFlight[name], n)
	if n <= limit {
		w.overConc[k] = false
		return nil
	}
	if w.overConc[k] {
		return nil // reported when it began
	}
	w.overConc[k] = true
	return w.a.sink.violation(Violation{Rule: RuleConcurrencyExceeded, OrderID: ev.OrderID, Key: ev.Key,
		Detail: fmt.Sprintf("%d %s calls of customer %s in flight at %s at %s (limit %d)", n, ev.Op, ev.CustomerID, w.provider,
			ev.At.Format(time.RFC3339Nano), limit)})
}

func (w *callWalker) checkRate(ev providers.CallEvent) error {
	from := ev.At.Add(-time.Second)
	i := 0
	for i < len(w.arrivals) && !w.arrivals[i].After(from) {
		i++
	}
	w.arrivals = append(w.arrivals[i:], ev.At)
	n := len(w.arrivals)
	w.a.rep.Flow.MaxPerSecond[w.provider] = max(w.a.rep.Flow.MaxPerSecond[w.provider], n)
	if w.rate == nil {
		return nil
	}
	if n <= w.bound {
		w.overRate = false
		return nil
	}
	if w.overRate {
		return nil
	}
	w.overRate = true
	return w.a.sink.violation(Violation{Rule: RuleRateExceeded, OrderID: ev.OrderID, Key: ev.Key,
		Detail: fmt.Sprintf("%d calls reached %s within the second before %s (limit %d/s, burst %d, jitter %s: at most %d)",
			n, w.provider, ev.At.Format(time.RFC3339Nano), w.rate.PerSecond, w.rate.Burst, w.jitter, w.bound)})
}

// expireLost forgets calls whose end never came.
func (w *callWalker) expireLost(now time.Time) {
	for id, start := range w.calls {
		if now.Sub(start.At) > lostCallAfter {
			delete(w.calls, id)
			delete(w.open[start.Op+"\x00"+start.CustomerID], id)
			w.a.rep.Flow.Unfinished++
		}
	}
}

// eventHeap orders events by time, an end before a start at the same
// instant.
type eventHeap []providers.CallEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if !h[i].At.Equal(h[j].At) {
		return h[i].At.Before(h[j].At)
	}
	return h[i].Event == providers.CallEnd && h[j].Event != providers.CallEnd
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(providers.CallEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
