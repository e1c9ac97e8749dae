package chaos

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// killer SIGKILLs workers at random moments (each the same number of times)
// and restarts Redis, and notes which orders each killed worker held.
type killer struct {
	s   *system
	cfg Config

	mu       sync.Mutex
	kills    int
	restarts int
	held     []orphan
}

// orphan is an order whose worker was killed while it held the lease.
type orphan struct {
	id     string
	killed time.Time
}

func newKiller(s *system, cfg Config) *killer { return &killer{s: s, cfg: cfg} }

func (k *killer) run(ctx context.Context) {
	total := k.cfg.Workers * k.cfg.KillsPerWorker
	events := make([]func(), 0, total+k.cfg.RedisRestarts)
	for i := range total {
		w := i % k.cfg.Workers
		events = append(events, func() { k.kill(ctx, w) })
	}
	// Restarts of Redis and slot migrations go in the middle of the run.
	for i := range k.cfg.RedisRestarts {
		at := len(events)/2 + i
		events = append(events[:at], append([]func(){k.restartRedis}, events[at:]...)...)
	}
	for i := range k.cfg.Reshards {
		at := len(events)/2 - i
		events = append(events[:max(at, 0)], append([]func(){k.reshard}, events[max(at, 0):]...)...)
	}
	gap := k.cfg.Duration / time.Duration(len(events)+1)
	for _, ev := range events {
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		ev()
	}
}

func (k *killer) kill(ctx context.Context, i int) {
	id, killed, err := k.s.replace(i)
	if err != nil {
		k.s.logf("chaos: restarting worker %d: %v", i, err)
	}
	held := k.heldBy(ctx, id, killed)
	k.mu.Lock()
	k.kills++
	for _, o := range held {
		k.held = append(k.held, orphan{id: o, killed: killed})
	}
	k.mu.Unlock()
	k.s.logf("chaos: killed worker %s holding %d orders", id, len(held))
}

// heldBy returns the unfinished orders whose live lease a worker held.
func (k *killer) heldBy(ctx context.Context, workerID string, at time.Time) []string {
	rdb := k.s.conn.Client
	shards := statemachine.NewShards(statemachine.DefaultShards(rdb))
	var ids []string
	for s := range shards.N() {
		part, err := rdb.ZRange(ctx, shards.IndexKey(s), 0, -1).Result()
		if err != nil {
			return nil
		}
		ids = append(ids, part...)
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, statemachine.RecordKey(id), "stt", "lt", "lu")
		}
		return nil
	})
	var out []string
	for i, id := range ids {
		v := cmds[i].Val()
		if len(v) < 3 {
			continue
		}
		status, _ := v[0].(string)
		token, _ := v[1].(string)
		until, _ := v[2].(string)
		var ms int64
		for _, c := range until {
			ms = ms*10 + int64(c-'0')
		}
		if status == "running" && strings.HasPrefix(token, workerID+"-") && time.UnixMilli(ms).After(at) {
			out = append(out, id)
		}
	}
	return out
}

func (k *killer) restartRedis() {
	k.s.logf("chaos: killing Redis")
	what, err := k.s.redis.restart()
	if err != nil {
		k.s.logf("chaos: restarting %s: %v", what, err)
		return
	}
	k.mu.Lock()
	k.restarts++
	k.mu.Unlock()
	k.s.logf("chaos: %s is back", what)
}

// reshard migrates a slot between masters while orders run.
func (k *killer) reshard() {
	start := time.Now()
	slot, err := k.s.redis.reshard()
	if err != nil {
		k.s.logf("chaos: migrating a slot: %v", err)
		return
	}
	k.s.logf("chaos: migrated slot %d in %s", slot, time.Since(start).Round(time.Millisecond))
}

func (k *killer) orphans() []orphan {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]orphan(nil), k.held...)
}

func (k *killer) fill(r *Result) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r.Kills, r.RedisRestarts, r.Orphaned = k.kills, k.restarts, len(k.held)
	k.s.redis.mu.Lock()
	r.Reshards = append([]int(nil), k.s.redis.moved...)
	k.s.redis.mu.Unlock()
}
