package statemachine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelined sends fill's commands in one round trip and returns the first
// failed command's error. Scripts lost by Redis (a restart, SCRIPT FLUSH,
// a node that joined a cluster) are loaded and the commands sent once more,
// so everything fill queues must be safe to repeat. On a cluster go-redis
// splits the pipeline by node, sends the parts at once and follows MOVED
// and ASK redirections.
//
// Auto-pipelining (sharing round trips between concurrent callers) was
// measured and did not pay on loopback; see docs/PERFORMANCE.md.
func (s *Store) pipelined(ctx context.Context, fill func(p redis.Pipeliner)) error {
	for attempt := 0; ; attempt++ {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
		lost := false
		for _, c := range cmds {
			lost = lost || isNoScript(c.Err())
		}
		if lost && attempt == 0 {
			if err := s.sc.load(ctx, s.rdb); err != nil {
				return err
			}
			continue
		}
		return firstErr(cmds, err)
	}
}

// send sends one write: own, the commands of the slot of key (an
// instance's record and history, through their scripts), and rest, those
// of other slots (index entries; may be nil). When durable and the store's
// durability waits for replicas, the wait goes behind own, on the
// connection that sent own: WAIT covers its own connection's writes only.
// The returned wait tells whether the write became durable.
//
// On one node (a single Redis, or the master behind Sentinels) everything
// is one pipeline. On a cluster without a wait it is one pipeline as well,
// which go-redis splits by node; with a wait, own and the wait go as one
// pipeline to the master of key's slot (a keyless WAIT sent through the
// cluster client would reach an arbitrary node), then rest.
func (s *Store) send(ctx context.Context, key string, durable bool, own, rest func(p redis.Pipeliner)) (*durableWait, error) {
	if rest == nil {
		rest = func(redis.Pipeliner) {}
	}
	wait := durable && s.cfg.Durability.Mode == DurabilityReplicas
	if !wait || s.cluster == nil {
		var w *durableWait
		err := s.pipelined(ctx, func(p redis.Pipeliner) {
			own(p)
			rest(p)
			if wait {
				w = s.awaitDurable(ctx, p)
			}
		})
		return w, err
	}
	w, err := s.onMaster(ctx, key, own)
	if err != nil {
		return nil, err
	}
	return w, s.pipelined(ctx, rest)
}

// onMaster sends fill's commands, all in key's slot, and the durability
// wait as one pipeline to the master that serves key's slot. A slot that
// moved (MOVED, ASK, TRYAGAIN: a reshard or a failover under way) is looked
// up again and the commands sent again after a short pause: a redirected
// command was not run. Scripts the node lacks are loaded on it.
func (s *Store) onMaster(ctx context.Context, key string, fill func(p redis.Pipeliner)) (*durableWait, error) {
	var err error
	for attempt := range 8 {
		var node *redis.Client
		if node, err = s.cluster.MasterForKey(ctx, key); err != nil {
			return nil, err
		}
		var w *durableWait
		var cmds []redis.Cmder
		cmds, err = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			fill(p)
			w = s.awaitDurable(ctx, p)
			return nil
		})
		err = firstErr(cmds, err)
		switch {
		case err == nil:
			return w, nil
		case isNoScript(err):
			if lerr := s.sc.load(ctx, node); lerr != nil {
				return nil, lerr
			}
		case isRedirect(err):
			s.cluster.ReloadState(ctx)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(5<<attempt) * time.Millisecond):
			}
		default:
			return nil, err
		}
	}
	return nil, err
}

// isRedirect reports whether a command was refused because its slot is
// served elsewhere or moving: it did not run.
func isRedirect(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// firstErr returns the first error among cmds other than redis.Nil, or the
// round trip's.
func firstErr(cmds []redis.Cmder, roundTrip error) error {
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	if roundTrip != nil && !errors.Is(roundTrip, redis.Nil) {
		return roundTrip
	}
	return nil
}
