package tasks

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backlog follows how many tasks wait in each of a worker's queues, from
// asynq's pending lists, refreshed every interval in one round trip. The
// engine asks it whether a run may go on inline into another queue's step
// (engine.Config.Backlog).
type Backlog struct {
	rdb      redis.UniversalClient
	interval time.Duration
	queues   []string
	counts   map[string]*atomic.Int64 // read-only map
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
		return c.Load()
	}
	return 0
}

// Run refreshes the counts every interval until ctx ends.
func (b *Backlog) Run(ctx context.Context) {
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		b.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
