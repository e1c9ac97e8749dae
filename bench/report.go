package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Results is everything one run measured.
type Results struct {
	Config    Config
	Machine   string
	Date      time.Time
	Baseline  ThroughputResult
	Orderflow ThroughputResult
	// OrderflowV2 is orderflow running workflow version 2, in the same
	// rounds.
	OrderflowV2 ThroughputResult
	// RoundRatios are orderflow/chain throughput per alternating round.
	RoundRatios []float64
	IdlePolling IdleResult
	Idle        IdleResult
	API         APIResult
	Sustained   SustainedResult
	Scaling     []ThroughputResult
	// Main is set when the main part ran (throughput, idle, API, scaling).
	Main bool
	// Priority and Flow are the priority and flow-control parts, when they
	// ran.
	Priority *PriorityResult
	Flow     *FlowResult
}

// Targets from the performance issue, checked in the report.
const (
	targetThroughputRatio = 1.25
	targetIdleP50         = 5 * time.Millisecond
	targetIdleCommands    = 500
	targetBytesPerOrder   = 2048
	targetAPIPerSecond    = 5000
	targetScaling2        = 1.6
)

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(rs []float64) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.2f×", r))
	}
	return strings.Join(s, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// Markdown renders every part that ran.
func (r *Results) Markdown() string {
	var parts []string
	for _, sec := range r.sections() {
		parts = append(parts, sec.text)
	}
	return strings.Join(parts, "\n")
}

// section is one generated section of PERFORMANCE.md and its markers.
type section struct {
	begin, end, text string
}

// sections returns the sections of the parts that ran.
func (r *Results) sections() []section {
	var out []section
	if r.Main {
		out = append(out, section{beginMarker, endMarker, r.mainMarkdown()})
	}
	header := fmt.Sprintf("Measured %s on %s.\n\nCommand: `%s`\n\n", r.Date.Format("2006-01-02 15:04 MST"), r.Machine, r.Config.Command)
	if r.Priority != nil {
		out = append(out, section{partBegin(PartPriority), partEnd(PartPriority), header + r.Priority.markdown()})
	}
	if r.Flow != nil {
		out = append(out, section{partBegin(PartFlow), partEnd(PartFlow), header + r.Flow.markdown()})
	}
	return out
}

// mainMarkdown renders the main part.
func (r *Results) mainMarkdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	c := r.Config
	w("Measured %s on %s.", r.Date.Format("2006-01-02 15:04 MST"), r.Machine)
	w("")
	w("Command: `%s`", c.Command)
	w("")
	w("### Throughput: the order pipeline against a raw asynq chain")
	w("")
	w("%d orders each, in-process zero-latency providers, one worker process with concurrency %d, a closed-loop driver keeping %d orders in flight; same Redis, same run, in %d alternating rounds (throughput ratio per round: %s; median %.2f×). The table sums the rounds.", c.Orders, c.Concurrency, c.Outstanding, c.Rounds, fmtRatios(r.RoundRatios), median(r.RoundRatios))
	w("")
	w("| | raw asynq chain (3 tasks) | orderflow | orderflow / chain |")
	w("|---|---:|---:|---:|")
	bl, of := r.Baseline, r.Orderflow
	w("| orders/s | %.0f | %.0f | **%.2f×** |", bl.OrdersPerSec, of.OrdersPerSec, of.OrdersPerSec/bl.OrdersPerSec)
	w("| latency p50 under load | %s | %s | %.2f× |", ms(bl.P50), ms(of.P50), float64(of.P50)/float64(bl.P50))
	w("| latency p99 under load | %s | %s | %.2f× |", ms(bl.P99), ms(of.P99), float64(of.P99)/float64(bl.P99))
	w("| Redis commands per order | %.1f | %.1f | **%.2f×** |", bl.CommandsPerOrd, of.CommandsPerOrd, of.CommandsPerOrd/bl.CommandsPerOrd)
	w("| Redis round trips per order (reads) | %.1f | %.1f | %.2f× |", bl.ReadsPerOrder, of.ReadsPerOrder, of.ReadsPerOrder/bl.ReadsPerOrder)
	w("| Redis memory per completed order | %.0f B | %.0f B | |", bl.BytesPerOrder, of.BytesPerOrder)
	w("| worker CPU s per 1,000 orders | %.3f | %.3f | %.2f× |", bl.CPUPer1000, of.CPUPer1000, of.CPUPer1000/bl.CPUPer1000)
	w("| Redis CPU s per 1,000 orders | %.3f | %.3f | %.2f× |", bl.RedisCPU1000, of.RedisCPU1000, of.RedisCPU1000/bl.RedisCPU1000)
	w("| submitting client CPU s per 1,000 orders | %.3f | %.3f | %.2f× |", bl.DriverCPU1000, of.DriverCPU1000, of.DriverCPU1000/bl.DriverCPU1000)
	w("")
	w("The chain keeps no state, no history and no compensation; orderflow keeps all three, with a lease, a list-index entry and a due-index entry per order. Memory is `used_memory` after minus before, with the finished orders kept (retention 168h); the chain leaves nothing behind.")
	w("")
	w("Top commands, chain: %s.  ", strings.Join(bl.TopCommands, ", "))
	w("Top commands, orderflow: %s.", strings.Join(of.TopCommands, ", "))
	w("")
	v2 := r.OrderflowV2
	if v2.OrdersPerSec > 0 {
		w("#### Workflow v2")
		w("")
		w("The same rounds with orders on workflow v2: a risk assessment, a reservation fanned out over one warehouse, a charge, and a tracked shipment (the in-process provider ships at once, so no polling), each a step of its own; the fan-out's begin is a write of its own.")
		w("")
		w("| | chain | v1 | v2 | v2 / v1 | v2 / chain |")
		w("|---|---:|---:|---:|---:|---:|")
		w("| orders/s | %.0f | %.0f | %.0f | %.2f× | %.2f× |", bl.OrdersPerSec, of.OrdersPerSec, v2.OrdersPerSec, v2.OrdersPerSec/of.OrdersPerSec, v2.OrdersPerSec/bl.OrdersPerSec)
		w("| Redis commands per order | %.1f | %.1f | %.1f | %.2f× | %.2f× |", bl.CommandsPerOrd, of.CommandsPerOrd, v2.CommandsPerOrd, v2.CommandsPerOrd/of.CommandsPerOrd, v2.CommandsPerOrd/bl.CommandsPerOrd)
		w("| Redis memory per completed order | — | %.0f B | %.0f B | %.2f× | |", of.BytesPerOrder, v2.BytesPerOrder, v2.BytesPerOrder/of.BytesPerOrder)
		w("")
		w("Top commands, v2: %s.", strings.Join(v2.TopCommands, ", "))
		w("")
	}
	w("### Idle latency")
	w("")
	w("%d orders one at a time: POST /v1/orders, then GET /v1/orders/{id}?wait=10s, which answers when the order is finished (no polling in the client). One API and one worker process.", c.IdleSamples)
	w("")
	w("| worker | p50 | p99 | idle Redis load |")
	w("|---|---:|---:|---:|")
	w("| asynq polling only (every 100 ms) | %s | %s | %.0f commands/s |", ms(r.IdlePolling.P50), ms(r.IdlePolling.P99), r.IdlePolling.CommandsPerSecond)
	w("| with the wake fast path | %s | %s | %.0f commands/s |", ms(r.Idle.P50), ms(r.Idle.P99), r.Idle.CommandsPerSecond)
	w("")
	r.Sustained.markdown(&b, c)
	w("")
	w("### API throughput")
	w("")
	w("POST /v1/orders, each a new order, over %d keep-alive connections from a Go client on loopback for %s; no worker running.", r.API.Connections, r.API.Duration.Round(time.Millisecond))
	w("")
	w("| requests/s | p50 | p99 | errors |")
	w("|---:|---:|---:|---:|")
	w("| %.0f | %s | %s | %d |", r.API.PerSecond, ms(r.API.P50), ms(r.API.P99), r.API.Errors)
	w("")
	w("### Worker scaling")
	w("")
	w("Worker processes of concurrency %d on one Redis, each provider call answering in %s (a worker waits on its providers, as with real ones); %d orders per run.", c.Concurrency, c.ScalingLatency, c.Orders/2)
	w("")
	w("| worker processes | orders/s | × one worker | p99 | commands/order |")
	w("|---:|---:|---:|---:|---:|")
	var one float64
	for _, s := range r.Scaling {
		if s.Workers == 1 {
			one = s.OrdersPerSec
		}
	}
	for _, s := range r.Scaling {
		w("| %d | %.0f | %.2f× | %s | %.1f |", s.Workers, s.OrdersPerSec, s.OrdersPerSec/one, ms(s.P99), s.CommandsPerOrd)
	}
	w("")
	w("### Targets")
	w("")
	w("| target | measured | |")
	w("|---|---|---|")
	ratio := median(r.RoundRatios)
	w("| throughput ≥ %.2f× the raw chain (median of the rounds) | %.2f× | %s |", targetThroughputRatio, ratio, verdict(ratio >= targetThroughputRatio))
	w("| commands per order below the chain's | %.1f vs %.1f | %s |", of.CommandsPerOrd, bl.CommandsPerOrd, verdict(of.CommandsPerOrd < bl.CommandsPerOrd))
	w("| idle p50 ≤ %s | %s | %s |", ms(targetIdleP50), ms(r.Idle.P50), verdict(r.Idle.P50 <= targetIdleP50))
	w("| idle Redis load ≤ %d commands/s per worker | %.0f | %s |", targetIdleCommands, r.Idle.CommandsPerSecond, verdict(r.Idle.CommandsPerSecond <= targetIdleCommands))
	w("| ≤ %d B of Redis per completed order | %.0f B | %s |", targetBytesPerOrder, of.BytesPerOrder, verdict(of.BytesPerOrder <= targetBytesPerOrder))
	w("| API ≥ %d POST/s | %.0f | %s |", targetAPIPerSecond, r.API.PerSecond, verdict(r.API.PerSecond >= targetAPIPerSecond))
	su := r.Sustained
	w("| sustained %.0f/s: p50 ≤ the order's own work + %s | %s vs %s + %s | %s |", su.Rate, ms(targetSustainedP50Slack), ms(su.Load.P50), ms(su.Work.P50), ms(targetSustainedP50Slack), verdict(su.P50Met()))
	w("| sustained %.0f/s: p99 ≤ %d × the order's own work | %s vs %d × %s | %s |", su.Rate, targetSustainedP99Factor, ms(su.Load.P99), targetSustainedP99Factor, ms(su.Work.P50), verdict(su.P99Met()))
	w("| idle Redis load after sustained load ≤ %d commands/s per worker | %.0f | %s |", targetIdleCommands, su.IdleCommandsPerWorker, verdict(su.IdleCommandsPerWorker <= targetIdleCommands))
	var two float64
	for _, s := range r.Scaling {
		if s.Workers == 2 {
			two = s.OrdersPerSec
		}
	}
	if one > 0 && two > 0 {
		w("| 2 workers ≥ %.1f× one | %.2f× | %s |", targetScaling2, two/one, verdict(two/one >= targetScaling2))
	}
	return b.String()
}

// Markers delimit the generated sections of PERFORMANCE.md: the main one,
// and one per other part.
const (
	beginMarker = "<!-- bench:begin (generated by `orderflow bench`; edit outside these markers) -->"
	endMarker   = "<!-- bench:end -->"
)

func partBegin(part string) string {
	return "<!-- bench:" + part + ":begin (generated by `orderflow bench`; edit outside these markers) -->"
}

func partEnd(part string) string { return "<!-- bench:" + part + ":end -->" }

// WriteDoc puts each part that ran between its markers in the file at
// path, keeping everything outside them and the sections of the parts
// that did not run. A section without markers is appended.
func (r *Results) WriteDoc(path string) error {
	for _, sec := range r.sections() {
		if err := writeSection(path, sec.begin, sec.end, "", sec.text); err != nil {
			return err
		}
	}
	return nil
}

// describeMachine says what the run ran on.
func describeMachine(ctx context.Context, rdb redis.UniversalClient) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/1024/1024)
	}
	redisVersion := "redis ?"
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				redisVersion = "Redis " + v
			}
		}
	}
	kernel := ""
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s (%d cores%s%s; load average %s at the start), %s, %s", cpu, runtime.NumCPU(), mem, kernel, loadAverage(), runtime.Version(), redisVersion)
}
