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

// orphan is an order a worker's kill held up: one whose lease the killed
// worker held, or one parked behind a concurrency slot it held.
type orphan struct {
	id     string
	killed time.Time
	kind   orphanKind
	// state is the order's state at the kill.
	state string
}

// orphanKind says how a kill held an order up; each kind's resume time is
// reported apart, as they wait for different things.
type orphanKind int

const (
	// heldRunning: the killed worker held the order's lease, and the order
	// held no concurrency slot.
	heldRunning orphanKind = iota
	// heldSlot: the killed worker held the order's lease, and the order
	// held a concurrency slot (it was in a limited step such as charge).
	heldSlot
	// queuedBehind: the order was parked in the line of a concurrency slot
	// that an order of the killed worker held.
	queuedBehind
)

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
	var held []orphan
	// What the worker held is read right after the kill, before its
	// replacement starts and before the leases run out.
	id, _, err := k.s.replace(i, func(id string, killed time.Time) {
		held = k.heldBy(ctx, id, killed)
	})
	if err != nil {
		k.s.logf("chaos: restarting worker %d: %v", i, err)
	}
	counts := [3]int{}
	for _, o := range held {
		counts[o.kind]++
	}
	k.mu.Lock()
	k.kills++
	k.held = append(k.held, held...)
	k.mu.Unlock()
	k.s.logf("chaos: killed worker %s holding %d orders (%d in a concurrency slot), %d more queued behind its slots",
		id, counts[heldRunning]+counts[heldSlot], counts[heldSlot], counts[queuedBehind])
}

// heldBy returns the unfinished orders whose live lease a worker held, and
// those parked behind the concurrency slots these held.
func (k *killer) heldBy(ctx context.Context, workerID string, at time.Time) []orphan {
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
			cmds[i] = p.HMGet(ctx, statemachine.RecordKey(id), "stt", "lt", "lu", "st")
		}
		return nil
	})
	held := map[string]bool{}
	state := map[string]string{}
	for i, id := range ids {
		v := cmds[i].Val()
		if len(v) < 4 {
			continue
		}
		status, _ := v[0].(string)
		token, _ := v[1].(string)
		until, _ := v[2].(string)
		state[id], _ = v[3].(string)
		var ms int64
		for _, c := range until {
			ms = ms*10 + int64(c-'0')
		}
		if status == "running" && strings.HasPrefix(token, workerID+"-") && time.UnixMilli(ms).After(at) {
			held[id] = true
		}
	}
	inSlot, queued := k.slotLines(ctx, held)
	var out []orphan
	for id := range held {
		kind := heldRunning
		if inSlot[id] {
			kind = heldSlot
		}
		out = append(out, orphan{id: id, killed: at, kind: kind, state: state[id]})
	}
	for _, id := range queued {
		if !held[id] {
			out = append(out, orphan{id: id, killed: at, kind: queuedBehind, state: state[id]})
		}
	}
	return out
}

// slotLines reads the lines of the concurrency limits: which of the held
// orders hold a slot, and who waits in those lines. The keys are those of
// package flowcontrol (of:flow:{c:<step>:<field>:<value>}:h holds the
// holders, :w the waiters).
func (k *killer) slotLines(ctx context.Context, held map[string]bool) (inSlot map[string]bool, queued []string) {
	inSlot = map[string]bool{}
	var mu sync.Mutex
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, statemachine.Prefix+"flow:{c:*}:h", 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			holders, err := c.ZRange(ctx, key, 0, -1).Result()
			if err != nil {
				continue
			}
			blocked := false
			mu.Lock()
			for _, h := range holders {
				if held[h] {
					inSlot[h], blocked = true, true
				}
			}
			mu.Unlock()
			if !blocked {
				continue
			}
			waiters, err := c.ZRange(ctx, strings.TrimSuffix(key, ":h")+":w", 0, -1).Result()
			if err != nil {
				continue
			}
			mu.Lock()
			queued = append(queued, waiters...)
			mu.Unlock()
		}
		return iter.Err()
	}
	switch c := k.s.conn.Client.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		_ = scan(ctx, c)
	}
	return inSlot, queued
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
	r.Kills, r.RedisRestarts = k.kills, k.restarts
	for _, o := range k.held {
		switch o.kind {
		case heldRunning:
			r.Orphaned++
		case heldSlot:
			r.Orphaned++
			r.OrphanedInSlot++
		case queuedBehind:
			r.QueuedBehind++
		}
	}
	k.s.redis.mu.Lock()
	r.Reshards = append([]int(nil), k.s.redis.moved...)
	k.s.redis.mu.Unlock()
}
