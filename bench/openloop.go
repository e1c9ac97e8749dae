package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// openLoop sends orders at a fixed arrival rate, whatever the system does
// with them (an open loop: a slow system gets a queue, not fewer orders),
// and times each from its scheduled start, not from when the driver got
// round to sending it, so that a stalled driver cannot hide queueing (no
// coordinated omission). Orders are announced finished on DoneChannel.
type openLoop struct {
	rate     float64
	n        int
	prefix   string
	begin    time.Time // the first order's scheduled start
	interval time.Duration

	mu sync.Mutex
	// Per order, offsets from begin (0: not yet). sent is when Start was
	// called, accepted when it returned, done when the order was announced
	// finished (or found finished afterwards, see settle).
	sent, accepted, done []time.Duration
	failed               []bool
	finished, errors     int
	firstErr             error
	allDone              chan struct{}
	began                chan struct{} // closed when begin is set
}

// newOpenLoop plans n orders at rate per second, with IDs prefix-<i>.
func newOpenLoop(rate float64, n int, prefix string) *openLoop {
	return &openLoop{
		rate: rate, n: n, prefix: prefix,
		sent: make([]time.Duration, n), accepted: make([]time.Duration, n), done: make([]time.Duration, n),
		failed: make([]bool, n), allDone: make(chan struct{}), began: make(chan struct{}),
	}
}

// sched returns order i's scheduled start, as an offset from begin.
func (l *openLoop) sched(i int) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / l.rate)
}

func (l *openLoop) id(i int) string { return l.prefix + "-" + strconv.Itoa(i) }

// index parses an order ID of this loop; false for another's.
func (l *openLoop) index(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, l.prefix+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil && i >= 0 && i < l.n
}

// run sends every order on schedule, then waits up to drain for the last
// to finish. It returns early only when ctx ends.
func (l *openLoop) run(ctx context.Context, rdb redis.UniversalClient, s submitter, drain time.Duration) error {
	sub := subscribeDone(ctx, rdb)
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		close(l.began) // nobody waits for a run that never began
		return fmt.Errorf("subscribing to %s: %w", DoneChannel, err)
	}
	l.mu.Lock()
	l.begin = time.Now()
	l.mu.Unlock()
	close(l.began)
	ch := sub.Channel(redis.WithChannelSize(1 << 14))
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for m := range ch {
			now := time.Since(l.begin)
			if i, ok := l.index(m.Payload); ok {
				l.markDone(i, now)
			}
		}
	}()
	defer func() { _ = sub.Close(); <-listening }()
	if l.n == 0 {
		return nil
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := range l.n {
		if d := l.sched(i) - time.Since(l.begin); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		}
		go l.submit(ctx, s, i)
	}
	select {
	case <-l.allDone:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(drain):
	}
	return nil
}

func (l *openLoop) submit(ctx context.Context, s submitter, i int) {
	sent := time.Since(l.begin)
	err := s.submit(ctx, l.id(i))
	now := time.Since(l.begin)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent[i], l.accepted[i] = sent, now
	if err != nil {
		l.failed[i] = true
		l.errors++
		if l.firstErr == nil {
			l.firstErr = fmt.Errorf("starting %s: %w", l.id(i), err)
		}
		l.checkAllDone()
	}
}

func (l *openLoop) markDone(i int, at time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done[i] != 0 {
		return
	}
	l.done[i] = at
	l.finished++
	l.checkAllDone()
}

// checkAllDone closes allDone once every order finished or failed to
// start; l.mu is held.
func (l *openLoop) checkAllDone() {
	if l.finished+l.errors == l.n {
		select {
		case <-l.allDone:
		default:
			close(l.allDone)
		}
	}
}

// pending returns the orders due to have started (their Start call may
// still be running) and not yet announced finished.
func (l *openLoop) pending() []string {
	<-l.began
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Since(l.begin)
	var out []string
	for i := 0; i < l.n && l.sched(i) <= now; i++ {
		if l.done[i] == 0 && !l.failed[i] {
			out = append(out, l.id(i))
		}
	}
	return out
}

// finishedCount returns how many orders were announced finished.
func (l *openLoop) finishedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.finished
}

// beganAt waits until the loop has begun and returns the first order's
// scheduled start.
func (l *openLoop) beganAt() time.Time {
	<-l.began
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.begin
}

// orderTiming is one order's offsets from the loop's begin.
type orderTiming struct {
	id                              string
	sched, sent, accepted, finished time.Duration
	failed                          bool
	// unfinished: never seen finished; finished is then when the run
	// stopped waiting, so its latency is a lower bound.
	unfinished bool
}

func (t orderTiming) latency() time.Duration { return t.finished - t.sched }

// timings returns every order's timing. Orders still unfinished are given
// end as their finish, so that they count in the percentiles as at least
// that late instead of vanishing from them.
func (l *openLoop) timings(end time.Duration) []orderTiming {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]orderTiming, l.n)
	for i := range l.n {
		t := orderTiming{id: l.id(i), sched: l.sched(i), sent: l.sent[i], accepted: l.accepted[i],
			finished: l.done[i], failed: l.failed[i]}
		if t.finished == 0 && !t.failed {
			t.unfinished, t.finished = true, end
		}
		out[i] = t
	}
	return out
}

// settle looks up the orders never announced finished (a worker killed
// between finishing an order and announcing it): those finished in Redis
// get their last history event as their finish.
func (l *openLoop) settle(ctx context.Context, store *statemachine.Store) error {
	ids := l.pending()
	if len(ids) == 0 {
		return nil
	}
	insts, err := store.Peek(ctx, ids)
	if err != nil {
		return err
	}
	begin := l.beganAt()
	for k, in := range insts {
		if in == nil || !in.Status.Terminal() {
			continue
		}
		evs, err := store.History(ctx, ids[k])
		if err != nil || len(evs) == 0 {
			continue
		}
		if i, ok := l.index(ids[k]); ok {
			l.markDone(i, evs[len(evs)-1].At.Sub(begin))
		}
	}
	return nil
}
