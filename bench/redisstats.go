package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// commandStats is the calls per command from INFO commandstats.
type commandStats map[string]int64

// eachNode calls fn with every master of a cluster (named by its
// address), or once with rdb itself ("") otherwise: the statistics of a
// cluster are the sums of its masters'.
func eachNode(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node redis.UniversalClient, addr string) error) error {
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, rdb, "")
	}
	var mu sync.Mutex
	return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		mu.Lock() // the callers add up into shared values
		defer mu.Unlock()
		return fn(ctx, n, n.Options().Addr)
	})
}

func readCommandStats(ctx context.Context, rdb redis.UniversalClient) (commandStats, error) {
	out := commandStats{}
	err := eachNode(ctx, rdb, func(ctx context.Context, n redis.UniversalClient, _ string) error {
		s, err := nodeCommandStats(ctx, n)
		for k, v := range s {
			out[k] += v
		}
		return err
	})
	return out, err
}

func nodeCommandStats(ctx context.Context, rdb redis.UniversalClient) (commandStats, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	out := commandStats{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out, nil
}

// harnessCommand reports whether a command is the harness's own: the
// PUBLISH (SPUBLISH on a cluster) of finished orders and the INFO and
// CONFIG calls of the measurement itself, and the cluster client's own
// topology reads.
func harnessCommand(name string) bool {
	switch name {
	case "publish", "spublish", "info", "config|resetstat", "config", "flushall", "subscribe", "ssubscribe", "ping":
		return true
	}
	return strings.HasPrefix(name, "cluster") || strings.HasPrefix(name, "command")
}

// total counts every call except the harness's own.
func (s commandStats) total() int64 {
	var n int64
	for name, calls := range s {
		if !harnessCommand(name) {
			n += calls
		}
	}
	return n
}

// top returns the n commands with the most calls, as "name calls" strings,
// leaving out the harness's own.
func (s commandStats) top(n int) []string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range s {
		if !harnessCommand(k) {
			all = append(all, kv{k, v})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[j].v > all[i].v {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	var out []string
	for i := 0; i < n && i < len(all); i++ {
		out = append(out, fmt.Sprintf("%s %d", all[i].k, all[i].v))
	}
	return out
}

// resetStats clears INFO commandstats (on every master of a cluster).
func resetStats(ctx context.Context, rdb redis.UniversalClient) error {
	return eachNode(ctx, rdb, func(ctx context.Context, n redis.UniversalClient, _ string) error {
		return n.ConfigResetStat(ctx).Err()
	})
}

// flushAll empties Redis (every master of a cluster).
func flushAll(ctx context.Context, rdb redis.UniversalClient) error {
	return eachNode(ctx, rdb, func(ctx context.Context, n redis.UniversalClient, _ string) error {
		return n.FlushAll(ctx).Err()
	})
}

// infoInt reads one integer field of an INFO section, summed over the
// masters of a cluster.
func infoInt(ctx context.Context, rdb redis.UniversalClient, section, field string) (int64, error) {
	var total int64
	found := false
	err := eachNode(ctx, rdb, func(ctx context.Context, n redis.UniversalClient, _ string) error {
		info, err := n.Info(ctx, section).Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
				x, _ := strconv.ParseInt(v, 10, 64)
				total += x
				found = true
			}
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("no %s in INFO %s", field, section)
	}
	return total, err
}

// usedMemory reads INFO memory's used_memory.
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	return infoInt(ctx, rdb, "memory", "used_memory")
}

// redisReads reads INFO stats' total_reads_processed: how many reads Redis
// made from its clients, about one per round trip.
func redisReads(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	n, err := infoInt(ctx, rdb, "stats", "total_reads_processed")
	if err != nil && strings.HasPrefix(err.Error(), "no ") {
		return 0, nil
	}
	return n, err
}

// redisCPU reads INFO cpu's used_cpu_sys + used_cpu_user (summed over the
// masters of a cluster).
func redisCPU(ctx context.Context, rdb redis.UniversalClient) (float64, error) {
	var total float64
	err := eachNode(ctx, rdb, func(ctx context.Context, n redis.UniversalClient, _ string) error {
		cpu, err := nodeCPU(ctx, n)
		total += cpu
		return err
	})
	return total, err
}

// nodeCPU reads one node's used_cpu_sys + used_cpu_user.
func nodeCPU(ctx context.Context, rdb redis.UniversalClient) (float64, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return total, nil
}

// nodeSample is one master's CPU time and command count at a moment.
type nodeSample struct {
	cpu      float64
	commands int64
}

// sampleNodes reads every master's CPU time and commands (a single node
// is named "").
func sampleNodes(ctx context.Context, rdb redis.UniversalClient) (map[string]nodeSample, error) {
	out := map[string]nodeSample{}
	err := eachNode(ctx, rdb, func(ctx context.Context, n redis.UniversalClient, addr string) error {
		cpu, err := nodeCPU(ctx, n)
		if err != nil {
			return err
		}
		stats, err := nodeCommandStats(ctx, n)
		if err != nil {
			return err
		}
		out[addr] = nodeSample{cpu: cpu, commands: stats.total()}
		return nil
	})
	return out, err
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// cpuSeconds returns a process's user+system CPU time from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100
