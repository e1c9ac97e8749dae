package providers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The call log. With SimConfig.CallLog a simulator records every call it
// receives, as a provider sees it: when it arrived and when it was over
// (its answer written, or its caller gone), so that a test or an audit can
// check limits from the provider's side: how many calls arrived in any one
// second, how many of one customer's were in flight at once. Each call is
// two events, appended to {sim:<provider>}:calls in the order they
// happened (each stamped with its time), by a writer that retries through
// Redis outages. FlushCalls waits until every event is in; a simulator
// that is killed loses the events it had not written yet.

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

func (s *Simulator) appendCall(_ context.Context, ev CallEvent) {
	b, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("simulator: encoding a call event", "err", err)
		return
	}
	s.calls.add(keysOf(ev.Provider).calls(), b)
}

// callWriter appends the call events to the logs in the order they came,
// from one goroutine at a time, and retries through a Redis outage, so
// that no event is lost or reordered while the simulator runs. Each
// append is one RPUSH of consecutive events of one log, which Redis applies
// whole or not at all.
type callWriter struct {
	rdb redis.UniversalClient
	log *slog.Logger

	mu      sync.Mutex
	queue   []queuedCall
	running bool
}

type queuedCall struct {
	key string
	raw []byte
}

func (w *callWriter) add(key string, raw []byte) {
	w.mu.Lock()
	w.queue = append(w.queue, queuedCall{key, raw})
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.run()
	}
}

// run appends until the queue is empty; it gives up only when the Redis
// client is closed.
func (w *callWriter) run() {
	failing := false
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		key, n := w.queue[0].key, 1
		for n < len(w.queue) && n < 500 && w.queue[n].key == key {
			n++
		}
		vals := make([]any, n)
		for i := range n {
			vals[i] = w.queue[i].raw
		}
		w.mu.Unlock()
		err := w.rdb.RPush(context.Background(), key, vals...).Err()
		switch {
		case errors.Is(err, redis.ErrClosed):
			w.mu.Lock()
			w.queue, w.running = nil, false
			w.mu.Unlock()
			return
		case err != nil:
			if !failing {
				w.log.Warn("simulator: appending to the call log; retrying", "err", err)
			}
			failing = true
			time.Sleep(100 * time.Millisecond)
			continue
		}
		failing = false
		w.mu.Lock()
		w.queue = w.queue[n:]
		w.mu.Unlock()
	}
}

// pending returns how many events wait to be appended.
func (w *callWriter) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// FlushCalls waits until every call event so far is in the call log, or
// ctx ends.
func (s *Simulator) FlushCalls(ctx context.Context) error {
	for s.calls.pending() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("flushing the call log: %d events left: %w", s.calls.pending(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
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
