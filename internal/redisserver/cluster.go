package redisserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisCLI is returned when redis-cli is not on PATH.
var ErrNoRedisCLI = errors.New("redis-cli not found on PATH")

// ClusterOptions configure a Redis Cluster of local processes.
type ClusterOptions struct {
	// Dir holds one subdirectory per node; it must exist.
	Dir string
	// Masters is the number of masters. Default 3.
	Masters int
	// Replicas is the number of replicas of each master. Default 0.
	Replicas int
	// AppendFsyncAlways turns on AOF with appendfsync always on every node.
	AppendFsyncAlways bool
	// Password sets requirepass and masterauth on every node.
	Password string
}

// Cluster is a Redis Cluster of redis-server processes on free loopback
// ports, made with redis-cli --cluster create.
type Cluster struct {
	opts  ClusterOptions
	cli   string
	Nodes []*Server
}

// StartCluster starts Masters × (1 + Replicas) nodes with
// --cluster-enabled yes, joins them with redis-cli --cluster create, and
// waits until every node reports cluster_state:ok and agrees on the slots.
func StartCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, ErrNoRedisCLI
	}
	c := &Cluster{opts: opts, cli: cli}
	for i := range opts.Masters * (1 + opts.Replicas) {
		dir := filepath.Join(opts.Dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no"}
		if opts.Password != "" {
			args = append(args, "--masterauth", opts.Password)
		}
		s, err := Start(Options{Dir: dir, AppendFsyncAlways: opts.AppendFsyncAlways, Password: opts.Password, Args: args})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	create := append([]string{"--cluster", "create"}, c.Addrs()...)
	create = append(create, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if out, err := c.redisCLI(create...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitStable(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Addrs returns every node's host:port, the masters first as created.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Seeds returns the nodes' addresses comma-separated, as --redis-cluster
// takes them.
func (c *Cluster) Seeds() string { return strings.Join(c.Addrs(), ",") }

// Password returns the nodes' password, or "".
func (c *Cluster) Password() string { return c.opts.Password }

// redisCLI runs redis-cli with args (and the password) and returns its
// combined output.
func (c *Cluster) redisCLI(args ...string) (string, error) {
	if c.opts.Password != "" {
		args = append([]string{"-a", c.opts.Password, "--no-auth-warning"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.cli, args...).CombinedOutput()
	return string(out), err
}

// WaitStable waits until every running node reports cluster_state:ok,
// every replica is in sync with its master, and every node sees the same
// slot owners (by CLUSTER SLOTS), or within fails.
func (c *Cluster) WaitStable(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		if last = c.unstable(); last == "" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cluster not stable within %s: %s", within, last)
}

// unstable returns why the cluster is not stable yet, or "".
func (c *Cluster) unstable() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var view string
	for _, n := range c.Nodes {
		if n.Pid() == 0 {
			continue
		}
		rdb := c.nodeClient(n)
		info, err := rdb.ClusterInfo(ctx).Result()
		if err != nil {
			_ = rdb.Close()
			return n.Addr() + ": " + err.Error()
		}
		if !strings.Contains(info, "cluster_state:ok") {
			_ = rdb.Close()
			return n.Addr() + ": cluster_state not ok"
		}
		repl, err := rdb.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			_ = rdb.Close()
			return n.Addr() + ": replica not in sync"
		}
		slots, err := rdb.ClusterSlots(ctx).Result()
		_ = rdb.Close()
		if err != nil {
			return n.Addr() + ": " + err.Error()
		}
		v := slotView(slots)
		if view != "" && v != view {
			return n.Addr() + " sees another slot map"
		}
		view = v
	}
	return ""
}

// slotView renders CLUSTER SLOTS as "start-end:master ..." in order.
func slotView(slots []redis.ClusterSlot) string {
	parts := make([]string, 0, len(slots))
	for _, s := range slots {
		if len(s.Nodes) > 0 {
			parts = append(parts, fmt.Sprintf("%d-%d:%s", s.Start, s.End, s.Nodes[0].Addr))
		}
	}
	for i := range parts {
		for j := i + 1; j < len(parts); j++ {
			if parts[j] < parts[i] {
				parts[i], parts[j] = parts[j], parts[i]
			}
		}
	}
	return strings.Join(parts, " ")
}

func (c *Cluster) nodeClient(n *Server) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr(), Password: c.opts.Password, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, Protocol: 2, DisableIdentity: true})
}

// Client returns a new cluster client over every node; the caller closes
// it.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: c.opts.Password, Protocol: 2, DisableIdentity: true})
}

// NodeID returns the cluster node ID of the node at addr.
func (c *Cluster) NodeID(addr string) (string, error) {
	for _, n := range c.Nodes {
		if n.Addr() != addr {
			continue
		}
		rdb := c.nodeClient(n)
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return rdb.Do(ctx, "CLUSTER", "MYID").Text()
	}
	return "", fmt.Errorf("no node at %s", addr)
}

// MasterOf returns the address of the master that serves slot.
func (c *Cluster) MasterOf(slot int) (string, error) {
	owner := ""
	err := c.eachSlotRange(func(start, end int, master string) {
		if slot >= start && slot <= end {
			owner = master
		}
	})
	if err == nil && owner == "" {
		err = fmt.Errorf("no master serves slot %d", slot)
	}
	return owner, err
}

// Masters returns the addresses of the nodes that serve slots now.
func (c *Cluster) Masters() ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := c.eachSlotRange(func(_, _ int, master string) {
		if !seen[master] {
			seen[master] = true
			out = append(out, master)
		}
	})
	return out, err
}

// MoveLowestSlot migrates the lowest slot of the master at from, keys
// included, to the master at to with redis-cli --cluster reshard
// --cluster-slots 1 (reshard takes a source's slots lowest first), and waits
// until the cluster is stable again. It returns the slot it moved.
func (c *Cluster) MoveLowestSlot(from, to string) (int, error) {
	fromID, err := c.NodeID(from)
	if err != nil {
		return 0, err
	}
	toID, err := c.NodeID(to)
	if err != nil {
		return 0, err
	}
	slot := -1
	if err := c.eachSlotRange(func(start, _ int, master string) {
		if master == from && (slot < 0 || start < slot) {
			slot = start
		}
	}); err != nil {
		return 0, err
	}
	if slot < 0 {
		return 0, fmt.Errorf("%s serves no slot", from)
	}
	out, err := c.redisCLI("--cluster", "reshard", to, "--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", "1", "--cluster-yes")
	if err != nil {
		return slot, fmt.Errorf("redis-cli --cluster reshard: %w: %s", err, out)
	}
	if owner, err := c.MasterOf(slot); err != nil || owner != to {
		return slot, fmt.Errorf("slot %d is served by %q after the reshard (%v): %s", slot, owner, err, out)
	}
	return slot, c.WaitStable(30 * time.Second)
}

// eachSlotRange calls fn with every slot range and its master, as the
// first node that answers sees them.
func (c *Cluster) eachSlotRange(fn func(start, end int, master string)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if n.Pid() == 0 {
			continue
		}
		rdb := c.nodeClient(n)
		slots, err := rdb.ClusterSlots(ctx).Result()
		_ = rdb.Close()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if len(s.Nodes) > 0 {
				fn(int(s.Start), int(s.End), s.Nodes[0].Addr)
			}
		}
		return nil
	}
	return errors.New("no node answers CLUSTER SLOTS")
}

// Stop stops every node; it is safe to call more than once.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}
