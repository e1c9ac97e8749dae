package api

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// asynqPendingKey is the list of a queue's pending tasks, as asynq v0.26
// names it (internal/base.PendingKey). It is only read, with LLEN: one O(1)
// command. Inspector.GetQueueInfo would run a Lua script and sample the
// memory of the queue's tasks on every call. A test pins the key against
// the Inspector.
func asynqPendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }

// backlog follows the number of pending tasks in the workflow queue, read in
// the background so that requests never wait for it.
type backlog struct {
	rdb      redis.UniversalClient
	key      string
	max      int64
	interval time.Duration
	log      *slog.Logger

	pending atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

// startBacklog starts following the queue, or returns nil when max is
// negative (shedding is off).
func startBacklog(rdb redis.UniversalClient, queue string, max int, interval time.Duration, log *slog.Logger) *backlog {
	if max < 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &backlog{rdb: rdb, key: asynqPendingKey(queue), max: int64(max), interval: interval, log: log,
		cancel: cancel, done: make(chan struct{})}
	go b.run(ctx)
	return b
}

func (b *backlog) run(ctx context.Context) {
	defer close(b.done)
	tick := time.NewTicker(b.interval)
	defer tick.Stop()
	for {
		b.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh reads the backlog. On an error it keeps the last value: new
// orders fail on their own while Redis is unreachable.
func (b *backlog) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, b.interval)
	defer cancel()
	n, err := b.rdb.LLen(ctx, b.key).Result()
	if err != nil {
		if ctx.Err() == nil {
			b.log.Debug("reading the workflow queue's backlog", "err", err)
		}
		return
	}
	b.pending.Store(n)
}

// over reports whether the backlog is above its bound.
func (b *backlog) over() bool { return b != nil && b.pending.Load() > b.max }

// stop ends the refresher and waits for it; it is safe to call more than
// once.
func (b *backlog) stop() {
	if b == nil {
		return
	}
	b.once.Do(func() {
		b.cancel()
		<-b.done
	})
}

// shed answers 503 with Retry-After, before reading the body or writing
// anything, while the backlog is above its bound. Only new orders are shed:
// reads, cancels and the orders already accepted keep flowing.
func (s *Server) shed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.backlog.over() {
			return overloaded()
		}
		return next(c)
	}
}
