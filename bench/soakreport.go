package bench

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// The soak's pass criteria.
const (
	// soakDriftFactor: the last interval's p99 within this × the first's.
	soakDriftFactor = 1.5
	// soakMemoryFactor: a surviving worker's RSS, and Redis's bytes per
	// order, in the last interval within this × the first's.
	soakMemoryFactor = 1.25
)

// SoakCheck is one pass criterion of a soak and whether it held.
type SoakCheck struct {
	Criterion, Measured string
	OK                  bool
	// NA: the run was too short to judge this criterion.
	NA bool
}

// rssFlat judges the surviving workers' RSS half by half: a worker left
// alone with the load while the killed one is replaced grows its pools
// once, which is a step, not a leak; a leak grows within a half.
func (r *SoakResult) rssFlat() (ok, na bool, measured string) {
	c := r.Config
	var before, after []SoakRow
	for _, row := range r.Rows {
		switch {
		case row.Start+c.Interval <= r.Kill.At:
			before = append(before, row)
		case row.Start >= r.Kill.At:
			after = append(after, row)
		}
	}
	ok, na = len(r.Survivors) > 0, true
	var parts []string
	for _, half := range []struct {
		name string
		rows []SoakRow
	}{{"before the kill", before}, {"after it", after}} {
		if len(half.rows) < 2 {
			continue
		}
		na = false
		first, last := half.rows[0], half.rows[len(half.rows)-1]
		for _, i := range r.Survivors {
			if i >= len(first.RSS) || i >= len(last.RSS) || first.RSS[i] == 0 {
				ok = false
				continue
			}
			g := float64(last.RSS[i]) / float64(first.RSS[i])
			ok = ok && g <= soakMemoryFactor
			parts = append(parts, fmt.Sprintf("%s %s: %s → %s (%.2f×)", r.Slots[i], half.name, mib(first.RSS[i]), mib(last.RSS[i]), g))
		}
	}
	if na {
		return false, true, "too short: no two whole intervals on one side of the kill"
	}
	return ok, false, strings.Join(parts, "; ")
}

// Checks evaluates the pass criteria: no latency drift, flat memory,
// prompt resumption of the killed worker's orders, a due index that keeps
// up, and every order finished.
func (r *SoakResult) Checks() []SoakCheck {
	c := r.Config
	var out []SoakCheck
	add := func(ok bool, criterion, measured string, args ...any) {
		out = append(out, SoakCheck{Criterion: criterion, Measured: fmt.Sprintf(measured, args...), OK: ok})
	}
	if len(r.Rows) < 2 {
		add(false, "at least two intervals to compare", "%d", len(r.Rows))
		return out
	}
	first, last := r.Rows[0], r.Rows[len(r.Rows)-1]
	add(float64(last.P99) <= soakDriftFactor*float64(first.P99),
		fmt.Sprintf("no drift: the last interval's p99 within %.1f× the first's", soakDriftFactor),
		"%s vs %s (%.2f×)", ms(last.P99), ms(first.P99), ratio(last.P99, first.P99))
	rssOK, rssNA, rss := r.rssFlat()
	out = append(out, SoakCheck{Criterion: fmt.Sprintf("flat worker memory: each surviving worker's RSS grows at most %.2f× within each half (the intervals wholly before the kill, and those after it)", soakMemoryFactor),
		Measured: rss, OK: rssOK, NA: rssNA})
	add(first.BytesPerOrder > 0 && last.BytesPerOrder <= soakMemoryFactor*first.BytesPerOrder,
		fmt.Sprintf("flat Redis memory: bytes per order at the last interval within %.2f× the first's", soakMemoryFactor),
		"%.0f B vs %.0f B (%.2f×)", last.BytesPerOrder, first.BytesPerOrder, last.BytesPerOrder/max(first.BytesPerOrder, 1))
	bound := c.Lease + c.ReaperInterval
	k := r.Kill
	add(k.Held > 0 && k.Resumed == k.Held && k.Max <= bound,
		fmt.Sprintf("the killed worker's orders resume within one lease plus one reaper interval (%s)", bound),
		"%d of %d held orders resumed; max %s", k.Resumed, k.Held, ms(k.Max))
	var lag time.Duration
	for _, row := range r.Rows {
		lag = max(lag, row.DueLag)
	}
	add(lag < bound, fmt.Sprintf("due lag below one reaper interval plus one lease (%s)", bound), "max %s", ms(lag))
	add(r.Latency.Unfinished == 0 && r.Errors == 0, "every order started and finished",
		"%d unfinished, %d failed to start, of %d", r.Latency.Unfinished, r.Errors, r.Orders)
	return out
}

// OK reports whether every pass criterion held (or could not be judged).
func (r *SoakResult) OK() bool {
	for _, c := range r.Checks() {
		if !c.OK && !c.NA {
			return false
		}
	}
	return true
}

// Markdown renders the soak report.
func (r *SoakResult) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	c := r.Config
	w("Measured %s on %s.", r.Date.Format("2006-01-02 15:04 MST"), r.Machine)
	w("")
	w("Command: `%s`", c.Command)
	w("")
	w("%d orders at %.0f/s for %s from an open-loop driver (each timed from its scheduled start to its finish notification, as in the sustained-load run), against %d worker processes of concurrency %d whose providers answer in %s; lease %s, reaper every %s. At %s worker %s was SIGKILLed and %s started in its place. Every %s the harness read the due index (`DueStats`: its size, and how long its oldest entry had been due), each worker's VmRSS and Redis's `used_memory`. Orders are kept, as with the default retention.",
		r.Orders, c.Rate, c.Duration, c.Workers, c.Concurrency, c.ProviderLatency, c.Lease, c.ReaperInterval,
		fmtOffset(r.Kill.At.Truncate(100*time.Millisecond)), r.Kill.Worker, orNone(r.Kill.Replacement), c.SampleEvery)
	if c.WakeWorkers != 0 {
		w("")
		w("The workers ran %d wake-path goroutines each (`--wake-workers`; the engine's default otherwise).", c.WakeWorkers)
	}
	w("")
	label := "interval"
	if c.Interval == time.Minute {
		label = "minute"
	}
	head, rule := "| "+label+" | orders | p50 | p99 | max | due entries (max) | due lag (max) |", "|---|---:|---:|---:|---:|---:|---:|"
	for _, s := range r.Slots {
		head += " RSS " + s + " |"
		rule += "---:|"
	}
	w("%s Redis B/order | CPU cores: ours / machine |", head)
	w("%s---:|---:|", rule)
	for _, row := range r.Rows {
		line := fmt.Sprintf("| %s | %d | %s | %s | %s | %d | %s |", fmtSpan(row.Start, c.Interval, c.Duration), row.Orders,
			ms(row.P50), ms(row.P99), ms(row.Max), row.DueEntries, ms(row.DueLag))
		for i := range r.Slots {
			if i < len(row.RSS) {
				line += " " + mib(row.RSS[i]) + " |"
			} else {
				line += " |"
			}
		}
		w("%s %.0f | %.2f / %.2f |", line, row.BytesPerOrder, row.CPU.Ours(), row.CPU.Machine)
	}
	w("| **all** | %d | **%s** | **%s** | %s | | |%s %.0f | |", r.Latency.Orders, ms(r.Latency.P50), ms(r.Latency.P99), ms(r.Latency.Max),
		strings.Repeat(" |", len(r.Slots)), r.BytesPerOrder)
	w("")
	w("Redis B/order is `used_memory` growth since the start divided by the orders finished by then (workers connected throughout). RSS is at each interval's last sample; a killed worker's column continues with its replacement. CPU is in cores busy on average: the workers, Redis and the driver, against the whole machine (of %d cores; the rest is other processes on this shared machine).", runtime.NumCPU())
	w("")
	w("CPU over the whole run: %s.", r.CPU)
	w("")
	k := r.Kill
	w("**Kill.** Worker %s held a live lease on %d orders when it was killed; %d of them moved on. From the kill to each one's next history event: p50 %s, p99 %s, max %s (lease %s + reaper interval %s = %s).",
		k.Worker, k.Held, k.Resumed, ms(k.P50), ms(k.P99), ms(k.Max), c.Lease, c.ReaperInterval, c.Lease+c.ReaperInterval)
	w("")
	w("Where the time goes (up to 5,000 orders spread over the run):")
	w("")
	phasesTable(w, []string{fmt.Sprintf("%.0f/s", c.Rate)}, r.Phases)
	w("")
	w("| pass criterion | measured | |")
	w("|---|---|---|")
	for _, ch := range r.Checks() {
		v := verdict(ch.OK)
		if ch.NA {
			v = "not judged"
		}
		w("| %s | %s | %s |", ch.Criterion, ch.Measured, v)
	}
	return b.String()
}

// The markers of the soak's section of PERFORMANCE.md.
const (
	soakBeginMarker = "<!-- soak:begin (generated by `orderflow bench --soak`; edit outside these markers) -->"
	soakEndMarker   = "<!-- soak:end -->"
)

// WriteDoc puts the soak report between the soak markers of the file at
// path, keeping everything outside them; a file without them gets them
// appended under a heading.
func (r *SoakResult) WriteDoc(path string) error {
	return writeSection(path, soakBeginMarker, soakEndMarker, "## Soak", r.Markdown())
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func orNone(s string) string {
	if s == "" {
		return "no worker"
	}
	return s
}
