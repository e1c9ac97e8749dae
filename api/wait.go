package api

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// MaxWait bounds GET /v1/orders/{id}?wait=.
const MaxWait = 30 * time.Second

// finishWaiters lets requests wait for orders to finish. One subscription
// to the finished channels per API process (statemachine.FinishedFeed) fans
// notifications out to the waiting requests; the finishing transition
// announces only orders someone watches, so orders nobody waits for cost
// nothing.
type finishWaiters struct {
	store *statemachine.Store
	log   *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	feed    *statemachine.FinishedFeed
	done    chan struct{}
}

func newFinishWaiters(store *statemachine.Store, log *slog.Logger) *finishWaiters {
	return &finishWaiters{store: store, log: log, waiters: map[string]map[chan struct{}]struct{}{}}
}

// add registers a waiter for id. The channel is closed when the order
// finishes; call the returned func when done waiting.
func (f *finishWaiters) add(ctx context.Context, id string) (<-chan struct{}, func(), error) {
	if err := f.subscribe(ctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{})
	f.mu.Lock()
	if f.waiters[id] == nil {
		f.waiters[id] = map[chan struct{}]struct{}{}
	}
	f.waiters[id][ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if set, ok := f.waiters[id]; ok {
			if _, still := set[ch]; still {
				delete(set, ch)
				if len(set) == 0 {
					delete(f.waiters, id)
				}
			}
		}
	}, nil
}

// subscribe starts following the finished channels once and waits until
// Redis confirmed every subscription, so that no notification published
// after add returns is missed.
func (f *finishWaiters) subscribe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	f.mu.Lock()
	if f.feed == nil {
		f.feed = f.store.FollowFinished()
		f.done = make(chan struct{})
		go f.run(f.feed, f.done)
	}
	ready := f.feed.Ready()
	f.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recheck is how often a waiter reads its order's status on its own when
// the announcements follow the writes (sharded indexes), where a crash
// between the two can lose one.
func (f *finishWaiters) recheck() time.Duration {
	if f.feed != nil && f.feed.Sharded() {
		return time.Second
	}
	return 0
}

func (f *finishWaiters) run(feed *statemachine.FinishedFeed, done chan struct{}) {
	defer close(done)
	for id := range feed.IDs() {
		f.mu.Lock()
		for ch := range f.waiters[id] {
			close(ch)
		}
		delete(f.waiters, id)
		f.mu.Unlock()
	}
}

// close ends the subscription.
func (f *finishWaiters) close() {
	f.mu.Lock()
	feed, done := f.feed, f.done
	f.mu.Unlock()
	if feed != nil {
		feed.Close()
		<-done
	}
}
