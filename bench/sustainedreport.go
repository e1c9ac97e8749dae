package bench

import (
	"fmt"
	"strings"
	"time"
)

// markdown renders the sustained-load section of the report.
func (r SustainedResult) markdown(b *strings.Builder, c Config) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	w("### Sustained load")
	w("")
	w("An open-loop driver starts orders at a fixed rate, %.0f orders/s for %s, the way the API does (`engine.Start`), against %d worker processes of concurrency %d whose providers answer in %s. Each order is timed from its *scheduled* start to its finish notification, so a driver that falls behind cannot hide queueing (no coordinated omission). The order's own work is measured the same way on the same workers at %.0f orders/s for %s, that is one order at a time.",
		r.Rate, r.Duration, r.Workers, c.Concurrency, r.ProviderLatency, c.WorkRate, c.WorkDuration)
	if c.WakeWorkers != 0 {
		w("")
		w("The workers ran %d wake-path goroutines each (`--wake-workers`; the engine's default otherwise).", c.WakeWorkers)
	}
	w("")
	w("| | orders | p50 | p99 | max | p50 − work | p99 / work |")
	w("|---|---:|---:|---:|---:|---:|---:|")
	w("| the order's own work (%.0f/s) | %d | %s | %s | %s | | |", c.WorkRate, r.Work.Orders, ms(r.Work.P50), ms(r.Work.P99), ms(r.Work.Max))
	for _, row := range r.Rows {
		w("| %.0f/s, %s | %d | %s | %s | %s | %s | %.1f× |", r.Rate, fmtSpan(row.Start, c.Interval, r.Duration), row.Orders, ms(row.P50), ms(row.P99), ms(row.Max),
			ms(row.P50-r.Work.P50), ratio(row.P99, r.Work.P50))
	}
	w("| **%.0f/s, all** | %d | **%s** | **%s** | %s | %s | %.1f× |", r.Rate, r.Load.Orders, ms(r.Load.P50), ms(r.Load.P99), ms(r.Load.Max),
		ms(r.Load.P50-r.Work.P50), ratio(r.Load.P99, r.Work.P50))
	w("")
	if r.Load.Unfinished > 0 || r.Errors > 0 {
		w("%d orders did not finish within the drain and count as finished when it ended; %d failed to start.", r.Load.Unfinished, r.Errors)
		w("")
	}
	w("CPU, in cores busy on average: at %.0f/s %s; at %.0f/s %s. This machine is shared, so the other processes' share shows in every phase's tail below.",
		c.WorkRate, r.WorkCPU, r.Rate, r.LoadCPU)
	w("")
	w("Where the time goes, from the driver's clock and each order's history (up to 5,000 orders spread over the run):")
	w("")
	phasesTable(w, []string{fmt.Sprintf("%.0f/s", c.WorkRate), fmt.Sprintf("%.0f/s", r.Rate)}, r.WorkPhases, r.Phases)
	w("")
	w("Once the load stopped (and %s more), the same workers, idle, cost Redis %.0f commands/s each (`INFO commandstats` over %s; busiest: %s).",
		c.Settle, r.IdleCommandsPerWorker, c.IdleWindow, strings.Join(r.IdleTop, ", "))
}

// phasesTable renders phase breakdowns side by side, one group of columns
// per run: p50, p99, and the mean over the slowest 1% of orders.
func phasesTable(w func(string, ...any), names []string, runs ...[]Phase) {
	head, rule := "| phase |", "|---|"
	for _, n := range names {
		head += " " + n + " p50 | " + n + " p99 | " + n + " slowest 1% (mean) |"
		rule += "---:|---:|---:|"
	}
	w("%s", head)
	w("%s", rule)
	if len(runs) == 0 || len(runs[0]) == 0 {
		return
	}
	for i, p := range runs[0] {
		line := "| " + p.Name + " |"
		for _, run := range runs {
			if i < len(run) {
				line += fmt.Sprintf(" %s | %s | %s |", ms(run[i].P50), ms(run[i].P99), ms(run[i].Tail))
			}
		}
		w("%s", line)
	}
}

// fmtSpan renders an interval of a run as m:ss–m:ss, the last one cut at
// the run's end.
func fmtSpan(start, length, end time.Duration) string {
	return fmtOffset(start) + "–" + fmtOffset(min(start+length, end))
}

// fmtOffset renders an offset into a run as m:ss (or m:ss.s below ten
// seconds' resolution).
func fmtOffset(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%d:%04.1f", int(d/time.Minute), (d % time.Minute).Seconds())
	}
	return fmt.Sprintf("%d:%02d", int(d/time.Minute), int((d%time.Minute)/time.Second))
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
