package api

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// MaxWait bounds GET /v1/orders/{id}?wait=.
const MaxWait = 30 * time.Second

// finishWaiters lets requests wait for orders to finish. One subscription to
// statemachine.FinishedChannel per API process fans notifications out to
// the waiting requests; the finishing transition publishes only for orders
// someone watches, so orders nobody waits for cost nothing.
type finishWaiters struct {
	rdb redis.UniversalClient
	log *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	sub     *redis.PubSub
	ready   chan struct{}
	done    chan struct{}
}

func newFinishWaiters(rdb redis.UniversalClient, log *slog.Logger) *finishWaiters {
	return &finishWaiters{rdb: rdb, log: log, waiters: map[string]map[chan struct{}]struct{}{}}
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

// subscribe starts the subscription once and waits until Redis confirmed it,
// so that no notification published after add returns is missed.
func (f *finishWaiters) subscribe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	f.mu.Lock()
	if f.sub == nil {
		f.sub = f.rdb.Subscribe(context.Background(), statemachine.FinishedChannel)
		f.ready = make(chan struct{})
		f.done = make(chan struct{})
		go f.run(f.sub, f.ready, f.done)
	}
	ready := f.ready
	f.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *finishWaiters) run(sub *redis.PubSub, ready, done chan struct{}) {
	defer close(done)
	var once sync.Once
	for {
		msg, err := sub.Receive(context.Background())
		if err != nil {
			if err == redis.ErrClosed {
				return
			}
			f.log.Debug("finish notifications interrupted; reconnecting", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			once.Do(func() { close(ready) })
		case *redis.Message:
			f.mu.Lock()
			for ch := range f.waiters[m.Payload] {
				close(ch)
			}
			delete(f.waiters, m.Payload)
			f.mu.Unlock()
		}
	}
}

// close ends the subscription.
func (f *finishWaiters) close() {
	f.mu.Lock()
	sub, done := f.sub, f.done
	f.mu.Unlock()
	if sub != nil {
		_ = sub.Close()
		<-done
	}
}
