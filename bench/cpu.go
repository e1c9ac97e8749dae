package bench

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// CPUShare is how the machine's CPU was spent over a window, in cores busy
// on average: the whole machine (every process, and time stolen by the
// hypervisor) and the run's own processes. On a shared machine the
// difference is other tenants', and it shows in the latency tails.
type CPUShare struct {
	Cores                  int
	Machine                float64
	Workers, Redis, Driver float64
	Steal                  float64 // part of Machine
}

// Ours is the run's own processes' share.
func (c CPUShare) Ours() float64 { return c.Workers + c.Redis + c.Driver }

// Others is what the rest of the machine used.
func (c CPUShare) Others() float64 { return max(0, c.Machine-c.Ours()) }

// String renders the share in one phrase.
func (c CPUShare) String() string {
	return strconv.FormatFloat(c.Machine, 'f', 2, 64) + " of " + strconv.Itoa(c.Cores) + " cores busy: workers " +
		strconv.FormatFloat(c.Workers, 'f', 2, 64) + ", Redis " + strconv.FormatFloat(c.Redis, 'f', 2, 64) +
		", driver " + strconv.FormatFloat(c.Driver, 'f', 2, 64) + ", other processes " + strconv.FormatFloat(c.Others(), 'f', 2, 64) +
		" (steal " + strconv.FormatFloat(c.Steal, 'f', 2, 64) + ")"
}

// cpuCounters is a reading of the cumulative CPU counters.
type cpuCounters struct {
	at                 time.Time
	busy, total, steal int64 // /proc/stat jiffies, all CPUs
	workers            map[int]float64
	redis, driver      float64 // seconds
}

// readCPU reads the machine's counters, Redis's, this process's and each
// worker's.
func (h *harness) readCPU(ctx context.Context, pids []int) cpuCounters {
	c := cpuCounters{at: time.Now(), workers: map[int]float64{}, driver: selfCPU()}
	c.busy, c.total, c.steal = machineJiffies()
	c.redis, _ = redisCPU(ctx, h.rdb)
	for _, pid := range pids {
		if s, err := cpuSeconds(pid); err == nil {
			c.workers[pid] = s
		}
	}
	return c
}

// shareBetween returns the CPU spent between two readings. A worker counts
// only if it ran at both (a killed one's last moments are lost).
func shareBetween(a, b cpuCounters) CPUShare {
	s := CPUShare{Cores: runtime.NumCPU()}
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || b.total <= a.total {
		return s
	}
	frac := float64(s.Cores) / float64(b.total-a.total)
	s.Machine = float64(b.busy-a.busy) * frac
	s.Steal = float64(b.steal-a.steal) * frac
	for pid, v := range b.workers {
		if v0, ok := a.workers[pid]; ok {
			s.Workers += (v - v0) / secs
		}
	}
	s.Redis = (b.redis - a.redis) / secs
	s.Driver = (b.driver - a.driver) / secs
	return s
}

// machineJiffies reads the first line of /proc/stat: the busy, total and
// stolen time of all CPUs together.
func machineJiffies() (busy, total, steal int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0
	}
	var v [8]int64 // user nice system idle iowait irq softirq steal
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	idle := v[3] + v[4]
	busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return busy, busy + idle, v[7]
}

// loadAverage returns /proc/loadavg's one-minute figure.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
