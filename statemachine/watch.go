package statemachine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch marks an instance as waited for: when a transition finishes it, its
// ID is announced on its finished channel (see FollowFinished). Follow the
// channels before calling Watch. It returns the instance's status now, or
// ErrNotFound.
func (s *Store) Watch(ctx context.Context, id string) (Status, error) {
	st, err := s.sc.watch.Run(ctx, s.rdb, []string{RecordKey(id)}).Text()
	if err != nil {
		return "", fmt.Errorf("watching instance: %w", err)
	}
	if st == "" {
		return "", ErrNotFound
	}
	return Status(st), nil
}

// publishFinished announces on the instance's shard channel (SPUBLISH) that
// a watched instance finished. With sharded indexes the transition script
// cannot publish there itself (another slot), so this follows the write; a
// failure, or a crash before it, leaves the waiter to its own recheck (see
// FinishedFeed.Sharded).
func (s *Store) publishFinished(ctx context.Context, id string) {
	_ = s.rdb.SPublish(ctx, s.shards.FinishedChannel(s.shards.Of(id)), id).Err()
}

// FinishedFeed delivers the IDs of watched instances as they finish: the
// subscription to FinishedChannel with one shard (PUBLISH, SUBSCRIBE), or
// to every shard's channel with several (SPUBLISH, SSUBSCRIBE: sharded
// pub/sub, served by the node of the channel's slot, so a cluster does not
// broadcast each message to every node). A shard subscription that the
// server ends (its slot moved to another node) or that breaks is made
// again.
type FinishedFeed struct {
	s     *Store
	ids   chan string
	ready chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	subs    []*redis.PubSub
	closed  bool
	pending int // subscriptions not confirmed yet
	wg      sync.WaitGroup
}

// FollowFinished starts following the finished channels. Wait for Ready
// before calling Watch, so that no announcement is missed; Close it when
// done.
func (s *Store) FollowFinished() *FinishedFeed {
	f := &FinishedFeed{s: s, ids: make(chan string, 64), ready: make(chan struct{}), done: make(chan struct{}),
		subs: make([]*redis.PubSub, s.shards.N()), pending: s.shards.N()}
	for k := range f.subs {
		f.wg.Go(func() { f.follow(k) })
	}
	return f
}

// Sharded reports whether announcements go out after the write (several
// shards), so that a crash between the two can lose one: a waiter should
// then recheck the instance now and then instead of relying on the feed
// alone.
func (f *FinishedFeed) Sharded() bool { return f.s.shards.N() > 1 }

// Ready is closed once every channel's subscription was confirmed.
func (f *FinishedFeed) Ready() <-chan struct{} { return f.ready }

// IDs delivers the finished instances' IDs; it is closed by Close.
func (f *FinishedFeed) IDs() <-chan string { return f.ids }

// subscribe opens shard k's subscription, or nil once the feed is closed.
func (f *FinishedFeed) subscribe(k int) *redis.PubSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	ctx := context.Background()
	var sub *redis.PubSub
	if f.s.shards.N() == 1 {
		sub = f.s.rdb.Subscribe(ctx, FinishedChannel)
	} else {
		if f.s.cluster != nil {
			f.s.cluster.ReloadState(ctx)
		}
		sub = f.s.rdb.SSubscribe(ctx, f.s.shards.FinishedChannel(k))
	}
	f.subs[k] = sub
	return sub
}

// follow keeps shard k's subscription and forwards its messages.
func (f *FinishedFeed) follow(k int) {
	confirmed := false
	for {
		sub := f.subscribe(k)
		if sub == nil {
			return
		}
		for {
			msg, err := sub.Receive(context.Background())
			if errors.Is(err, redis.ErrClosed) {
				break
			}
			if err != nil {
				select {
				case <-f.done:
				case <-time.After(100 * time.Millisecond):
				}
				continue // go-redis reconnects and subscribes again
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "sunsubscribe" || m.Kind == "unsubscribe" {
					_ = sub.Close() // the server ended it (the slot moved): subscribe again
					break
				}
				if !confirmed {
					confirmed = true
					f.confirm()
				}
				continue
			case *redis.Message:
				select {
				case f.ids <- m.Payload:
				case <-f.done:
					return
				}
				continue
			default:
				continue
			}
			break
		}
		select {
		case <-f.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (f *FinishedFeed) confirm() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending--; f.pending == 0 {
		close(f.ready)
	}
}

// Close ends every subscription and closes IDs.
func (f *FinishedFeed) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	close(f.done)
	for _, sub := range f.subs {
		if sub != nil {
			_ = sub.Close()
		}
	}
	f.mu.Unlock()
	f.wg.Wait()
	close(f.ids)
}
