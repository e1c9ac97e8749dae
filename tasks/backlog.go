package tasks

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backlog follows how many tasks wait in each of a worker's queues, from
// asynq's pending lists, refreshed in one round trip every interval in
// which it was read. The engine asks it whether a run may go on inline into
// another queue's step, or wait in place (engine.Config.Backlog); an idle
// worker asks nothing, and costs Redis nothing for it. The first read after
// a quiet spell sees the counts of the last refresh.
type Backlog struct {
	rdb      redis.UniversalClient
	interval time.Duration
	queues   []string
	counts   map[string]*atomic.Int64 // read-only map
	read     atomic.Bool              // read since the last refresh
}

// NewBacklog returns a Backlog of queues; call Run to keep it fresh.
func NewBacklog(rdb redis.UniversalClient, queues []string, interval time.Duration) *Backlog {
	b := &Backlog{rdb: rdb, interval: interval, queues: queues, counts: make(map[string]*atomic.Int64, len(queues))}
	for _, q := range queues {
		b.counts[q] = new(atomic.Int64)
	}
	return b
}

// pendingKey is asynq's list of a queue's pending tasks (asynq's
// base.PendingKey), read here, never written.
func pendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// Len returns how many tasks waited in queue at the last refresh; 0 for a
// queue it does not follow.
func (b *Backlog) Len(queue string) int64 {
	if c, ok := b.counts[queue]; ok {
		b.read.Store(true)
		return c.Load()
	}
	return 0
}

// Run refreshes the counts, at start and then every interval in which they
// were read, until ctx ends.
func (b *Backlog) Run(ctx context.Context) {
	t := time.NewTicker(b.interval)
	defer t.Stop()
	b.refresh(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if b.read.Swap(false) {
				b.refresh(ctx)
			}
		}
	}
}

func (b *Backlog) refresh(ctx context.Context) {
	cmds := make([]*redis.IntCmd, len(b.queues))
	if _, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, q := range b.queues {
			cmds[i] = p.LLen(ctx, pendingKey(q))
		}
		return nil
	}); err != nil {
		return // keep the last counts; Redis may be back at the next tick
	}
	for i, q := range b.queues {
		b.counts[q].Store(cmds[i].Val())
	}
}
