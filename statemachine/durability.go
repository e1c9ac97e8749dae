package statemachine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DurabilityMode says how sure a write must be before orderflow acts on it.
type DurabilityMode string

// The durability modes.
const (
	// DurabilityNone trusts an acknowledged write (development, or a Redis
	// whose persistence the operator vouches for).
	DurabilityNone DurabilityMode = "none"
	// DurabilityFsync relies on Redis running appendonly with appendfsync
	// always, so an acknowledged write is on disk; CheckDurability warns
	// when it does not.
	DurabilityFsync DurabilityMode = "fsync"
	// DurabilityReplicas waits, after every write that precedes an effect
	// and before an order is acknowledged, until Replicas replicas have the
	// write (WAIT), or have it in their AOF where the server has WAITAOF
	// (Redis 7.2 and later).
	DurabilityReplicas DurabilityMode = "replicas"
)

// Durability is a store's durability setting.
type Durability struct {
	// Mode is the setting. Default DurabilityNone.
	Mode DurabilityMode
	// Replicas is how many replicas must have a write, with
	// DurabilityReplicas.
	Replicas int
	// Timeout bounds each wait for the replicas. Default 1s.
	Timeout time.Duration
}

// ParseDurability reads "none", "fsync" or "replicas=N" (N >= 1).
func ParseDurability(s string) (Durability, error) {
	switch {
	case s == "" || s == string(DurabilityNone):
		return Durability{Mode: DurabilityNone}, nil
	case s == string(DurabilityFsync):
		return Durability{Mode: DurabilityFsync}, nil
	}
	if n, ok := strings.CutPrefix(s, string(DurabilityReplicas)+"="); ok {
		r, err := strconv.Atoi(n)
		if err == nil && r >= 1 && r <= 100 {
			return Durability{Mode: DurabilityReplicas, Replicas: r}, nil
		}
	}
	return Durability{}, fmt.Errorf("durability %q: want none, fsync or replicas=N (N from 1 to 100)", s)
}

// String renders d as ParseDurability reads it.
func (d Durability) String() string {
	if d.Mode == DurabilityReplicas {
		return fmt.Sprintf("replicas=%d", d.Replicas)
	}
	return string(cmpMode(d.Mode))
}

func cmpMode(m DurabilityMode) DurabilityMode {
	if m == "" {
		return DurabilityNone
	}
	return m
}

// ErrNotDurable means a write was made but too few replicas acknowledged it
// within the timeout. Whatever the write was to precede (a provider call, an
// acknowledgement) must not happen yet; retrying is safe.
var ErrNotDurable = errors.New("write not acknowledged by enough replicas")

// durableWait is the wait queued behind a write in its pipeline.
type durableWait struct {
	wait      *redis.Cmd
	waitAOF   *redis.Cmd
	replicas  int
	wantLocal int64
}

// awaitDurable queues, in the pipeline of a write, the wait that makes the
// write durable as configured; nil when there is nothing to wait for. It
// must share the write's pipeline: WAIT covers the writes of its own
// connection only.
func (s *Store) awaitDurable(ctx context.Context, p redis.Pipeliner) *durableWait {
	d := s.cfg.Durability
	if d.Mode != DurabilityReplicas {
		return nil
	}
	s.probeOnce.Do(func() { s.probe(ctx) })
	w := &durableWait{replicas: d.Replicas, wantLocal: s.aofLocal}
	if s.hasWaitAOF {
		w.waitAOF = p.Do(ctx, "WAITAOF", s.aofLocal, d.Replicas, d.Timeout.Milliseconds())
	} else {
		w.wait = p.Do(ctx, "WAIT", d.Replicas, d.Timeout.Milliseconds())
	}
	return w
}

// err reports whether the wait was met.
func (w *durableWait) err() error {
	if w == nil {
		return nil
	}
	if w.waitAOF != nil {
		v, err := w.waitAOF.Int64Slice()
		if err != nil {
			return fmt.Errorf("WAITAOF: %w", err)
		}
		if len(v) < 2 || v[0] < w.wantLocal || v[1] < int64(w.replicas) {
			return fmt.Errorf("%w: WAITAOF answered %v, want %d local and %d replicas", ErrNotDurable, v, w.wantLocal, w.replicas)
		}
		return nil
	}
	n, err := w.wait.Int64()
	if err != nil {
		return fmt.Errorf("WAIT: %w", err)
	}
	if n < int64(w.replicas) {
		return fmt.Errorf("%w: %d of %d replicas", ErrNotDurable, n, w.replicas)
	}
	return nil
}

// durabilityProbe is what the store learned about the server's persistence.
type durabilityProbe struct {
	probeOnce  sync.Once
	hasWaitAOF bool
	aofLocal   int64
	gate       durabilityGate
}

// durabilityGate holds durable writes back while too few replicas are in
// sync, after a durable write failed its wait (a failover left the master
// without its replica, a replica is resynchronising). Without it, each try
// of a step would write the beginning of an attempt, fail its wait, and use
// the attempt up: an outage of the replicas would fail orders.
type durabilityGate struct {
	down    atomic.Bool // the last durable write failed its wait
	mu      sync.Mutex
	checked time.Time
	ready   bool
}

// gateInterval is how often a held-back durable write reads the replicas
// again.
const gateInterval = 100 * time.Millisecond

// readyForDurable returns ErrNotDurable, having written nothing, while the
// last durable write failed its wait and the master that serves key still
// has fewer replicas in sync than required (INFO replication, read at most
// every gateInterval). Otherwise the write may go.
func (s *Store) readyForDurable(ctx context.Context, key string) error {
	d := s.cfg.Durability
	g := &s.gate
	if d.Mode != DurabilityReplicas || !g.down.Load() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) >= gateInterval {
		var rdb redis.UniversalClient = s.rdb
		if s.cluster != nil {
			if node, err := s.cluster.MasterForKey(ctx, key); err == nil {
				rdb = node
			}
		}
		info, err := rdb.Info(ctx, "replication").Result()
		g.ready = err == nil && replicasInSync(info) >= d.Replicas
		g.checked = time.Now()
	}
	if !g.ready {
		return fmt.Errorf("%w: fewer than %d replicas in sync since the last durable write", ErrNotDurable, d.Replicas)
	}
	return nil
}

// noteDurable records the outcome of a durable write's wait.
func (s *Store) noteDurable(w *durableWait, err error) {
	if w == nil {
		return
	}
	s.gate.down.Store(errors.Is(err, ErrNotDurable))
}

// replicasInSync counts the replicas that INFO replication lists online.
func replicasInSync(info string) int {
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "slave") && strings.Contains(line, "state=online") {
			n++
		}
	}
	return n
}

// probe finds whether the server has WAITAOF (Redis 7.2+) and keeps an AOF
// of its own. A server that refuses CONFIG or COMMAND (an ACL) is taken to
// have neither.
func (s *Store) probe(ctx context.Context) {
	if info, err := s.rdb.Do(ctx, "COMMAND", "INFO", "WAITAOF").Slice(); err == nil && len(info) > 0 && info[0] != nil {
		s.hasWaitAOF = true
	}
	if v, err := s.rdb.ConfigGet(ctx, "appendonly").Result(); err == nil && v["appendonly"] == "yes" {
		s.aofLocal = 1
	}
}

// CheckDurability reads the server's persistence settings and returns what
// an operator should know about them under the store's durability setting:
// with DurabilityFsync, a server not running appendonly with appendfsync
// always; with DurabilityReplicas, a server with fewer connected replicas
// than required. On a cluster it reads every master. It fails only when
// Redis cannot be reached.
func (s *Store) CheckDurability(ctx context.Context) ([]string, error) {
	d := s.cfg.Durability
	var mu sync.Mutex
	var warnings []string
	warn := func(w string) {
		mu.Lock()
		warnings = append(warnings, w)
		mu.Unlock()
	}
	err := s.eachMaster(ctx, func(ctx context.Context, rdb redis.UniversalClient, node string) error {
		who := "Redis"
		if node != "" {
			who += " " + node
		}
		switch d.Mode {
		case DurabilityFsync:
			v, err := rdb.ConfigGet(ctx, "append*").Result()
			if err != nil {
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				warn("durability fsync: cannot read the server's persistence settings (" + who + ", CONFIG GET: " + err.Error() + "); make sure Redis runs appendonly yes with appendfsync always")
				return nil
			}
			if v["appendonly"] != "yes" || v["appendfsync"] != "always" {
				warn(fmt.Sprintf("durability fsync: %s runs appendonly=%s appendfsync=%s, so an acknowledged write can be lost in a crash; run appendonly yes with appendfsync always, or use --durability replicas=N",
					who, cmpStr(v["appendonly"], "?"), cmpStr(v["appendfsync"], "?")))
			}
		case DurabilityReplicas:
			info, err := rdb.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if n := connectedReplicas(info); n < d.Replicas {
				warn(fmt.Sprintf("durability replicas=%d: %s has %d connected replicas; writes that precede an effect will fail until enough replicas are connected", d.Replicas, who, n))
			}
		}
		return nil
	})
	if d.Mode == DurabilityReplicas {
		s.probeOnce.Do(func() { s.probe(ctx) })
	}
	if err != nil {
		return nil, err
	}
	return warnings, nil
}

// eachMaster calls fn with every master of a cluster, or with the store's
// client otherwise; node names it in messages ("" for a single node).
func (s *Store) eachMaster(ctx context.Context, fn func(ctx context.Context, rdb redis.UniversalClient, node string) error) error {
	if s.cluster == nil {
		return fn(ctx, s.rdb, "")
	}
	return s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return fn(ctx, c, "node "+c.Options().Addr)
	})
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(info string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
