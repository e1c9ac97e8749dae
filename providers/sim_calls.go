package providers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// The call log. With SimConfig.CallLog a simulator records every call it
// receives, as a provider sees it: when it arrived and when it was over
// (its answer written, or its caller gone), so that a test or an audit can
// check limits from the provider's side: how many calls arrived in any one
// second, how many of one customer's were in flight at once. Each call is
// two events, appended to {sim:<provider>}:calls as they happen, so the log
// is in time order but for the few milliseconds an append takes.

// The events of a call.
const (
	CallStart = "start"
	CallEnd   = "end"
)

// CallEvent is one event of one call in a simulator's call log.
type CallEvent struct {
	// At is when the call arrived (start) or was over (end), in UTC.
	At time.Time `json:"at"`
	// Event is CallStart or CallEnd.
	Event string `json:"event"`
	// Call pairs a call's two events.
	Call     string `json:"call"`
	Provider string `json:"provider"`
	Op       string `json:"op"`
	// Key is the call's Idempotency-Key.
	Key        string `json:"key,omitempty"`
	OrderID    string `json:"order_id,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
}

// calls is the key of a provider's call log.
func (k simKeys) calls() string { return k.prefix + "calls" }

// logCall appends the start of c to its provider's call log, and returns
// the func that appends its end, once, however often it is called: when
// the handler returns, or when the caller hangs up, whichever comes first.
func logCall[R any](s *Simulator, ctx context.Context, c simCall[R]) (end func()) {
	ev := CallEvent{At: c.at, Event: CallStart, Call: rand.Text(), Provider: c.provider, Op: c.op, Key: c.key}
	switch r := any(c.req).(type) {
	case *ChargeRequest:
		ev.OrderID, ev.CustomerID = r.OrderID, r.CustomerID
	case *ShipRequest:
		ev.OrderID, ev.CustomerID = r.OrderID, r.CustomerID
	case *ReserveRequest:
		ev.OrderID = r.OrderID
	case *RefundRequest:
		ev.OrderID = r.OrderID
	}
	s.appendCall(ctx, ev)
	var once sync.Once
	return func() {
		once.Do(func() {
			e := ev
			e.At, e.Event = time.Now().UTC(), CallEnd
			s.appendCall(ctx, e)
		})
	}
}

func (s *Simulator) appendCall(ctx context.Context, ev CallEvent) {
	b, err := json.Marshal(ev)
	if err == nil {
		err = s.rdb.RPush(context.WithoutCancel(ctx), keysOf(ev.Provider).calls(), b).Err()
	}
	if err != nil {
		s.log.ErrorContext(ctx, "simulator: appending to the call log", "provider", ev.Provider, "err", err)
	}
}

// callBatch is how many events ScanCalls reads at once.
const callBatch = 1000

// ScanCalls calls fn with every event of a provider's call log, in the
// order appended, reading a batch at a time. It stops at the first error
// fn returns and returns it.
func (l *Ledger) ScanCalls(ctx context.Context, provider string, fn func(CallEvent) error) error {
	if !slices.Contains(providerNames, provider) {
		return fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	key := keysOf(provider).calls()
	for start := int64(0); ; start += callBatch {
		raw, err := l.rdb.LRange(ctx, key, start, start+callBatch-1).Result()
		if err != nil {
			return fmt.Errorf("reading the %s call log: %w", provider, err)
		}
		for _, r := range raw {
			var ev CallEvent
			if err := json.Unmarshal([]byte(r), &ev); err != nil {
				return fmt.Errorf("decoding a %s call: %w", provider, err)
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(raw) < callBatch {
			return nil
		}
	}
}
