package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// SustainedResult is the sustained-load measurement: orders arriving at a
// steady rate well below saturation, against the same workers' latency for
// one order at a time.
type SustainedResult struct {
	Rate            float64
	Duration        time.Duration
	Workers         int
	ProviderLatency time.Duration
	// Errors counts orders whose Start failed (left out of the latency).
	Errors int
	// Work is the order's own work: orders at WorkRate, one at a time,
	// timed the same way.
	Work       LatencyRow
	WorkPhases []Phase
	// Load is the whole sustained run; Rows split it by Interval.
	Load   LatencyRow
	Rows   []LatencyRow
	Phases []Phase
	// WorkCPU and LoadCPU are how the machine's CPU was spent during the
	// two runs.
	WorkCPU, LoadCPU CPUShare
	// IdleCommandsPerWorker is Redis's load per idle worker process once
	// the load stopped, and IdleTop its busiest commands.
	IdleCommandsPerWorker float64
	IdleTop               []string
}

// Targets of the sustained-load issue.
const (
	// targetSustainedP50Slack: p50 under load ≤ the order's own work plus this.
	targetSustainedP50Slack = 6 * time.Millisecond
	// targetSustainedP99Factor: p99 under load ≤ this × the order's own work.
	targetSustainedP99Factor = 4
)

// P50Met and P99Met check the sustained-load targets against the order's
// own work (its p50 at the tiny rate).
func (r SustainedResult) P50Met() bool { return r.Load.P50 <= r.Work.P50+targetSustainedP50Slack }

// P99Met: see P50Met.
func (r SustainedResult) P99Met() bool { return r.Load.P99 <= targetSustainedP99Factor*r.Work.P50 }

// sustained measures the order's own work at WorkRate, then SustainedRate
// for SustainedDuration, on the same SustainedWorkers worker processes,
// then Redis's load once they are idle.
func (h *harness) sustained(ctx context.Context) (SustainedResult, error) {
	c := h.cfg
	r := SustainedResult{Rate: c.SustainedRate, Duration: c.SustainedDuration, Workers: c.SustainedWorkers, ProviderLatency: c.SustainedLatency}
	if err := h.flush(ctx); err != nil {
		return r, err
	}
	workers, err := h.startWorkers(c.SustainedWorkers, WorkerOptions{Mode: ModeOrderflow,
		Concurrency: c.Concurrency, Wake: true, ProviderLatency: c.SustainedLatency,
		WakeWorkers: c.WakeWorkers})
	if err != nil {
		return r, err
	}
	defer stopAll(workers)
	sub, closeSub, err := h.submitter(ModeOrderflow, 64)
	if err != nil {
		return r, err
	}
	defer closeSub()
	store := statemachine.NewStore(h.rdb, statemachine.StoreConfig{})
	defer store.Close()
	// Let the workers settle (their first polls, their pools) before timing.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return r, err
	}

	h.logf("  the order's own work: %.0f orders/s for %s", c.WorkRate, c.WorkDuration)
	pids := make([]int, len(workers))
	for i, p := range workers {
		pids[i] = p.Pid()
	}
	cpu0 := h.readCPU(ctx, pids)
	work, err := h.steady(ctx, sub, store, "work", c.WorkRate, c.WorkDuration, 30*time.Second)
	if err != nil {
		return r, err
	}
	cpu1 := h.readCPU(ctx, pids)
	r.Work, r.WorkPhases, r.WorkCPU = latencyOf(work.timings), work.phases, shareBetween(cpu0, cpu1)
	h.logf("    p50 %s, p99 %s; CPU: %s", ms(r.Work.P50), ms(r.Work.P99), r.WorkCPU)

	h.logf("  sustained: %.0f orders/s for %s", c.SustainedRate, c.SustainedDuration)
	stopProfile := h.profileSelf("sustained")
	cpu0 = h.readCPU(ctx, pids)
	load, err := h.steady(ctx, sub, store, "load", c.SustainedRate, c.SustainedDuration, 30*time.Second)
	stopProfile()
	if err != nil {
		return r, err
	}
	r.LoadCPU = shareBetween(cpu0, h.readCPU(ctx, pids))
	r.Load, r.Rows, r.Phases, r.Errors = latencyOf(load.timings), latencyRows(load.timings, c.Interval), load.phases, load.errors
	h.logf("    p50 %s, p99 %s, max %s, %d unfinished, %d errors; CPU: %s", ms(r.Load.P50), ms(r.Load.P99), ms(r.Load.Max), r.Load.Unfinished, r.Errors, r.LoadCPU)
	for _, p := range r.Phases {
		h.logf("    %s: p50 %s, p99 %s, slowest 1%% %s", p.Name, ms(p.P50), ms(p.P99), ms(p.Tail))
	}

	// The idle load: the same workers, nothing to do.
	if err := sleep(ctx, c.Settle); err != nil {
		return r, err
	}
	if err := resetStats(ctx, h.rdb); err != nil {
		return r, err
	}
	if err := sleep(ctx, c.IdleWindow); err != nil {
		return r, err
	}
	stats, err := readCommandStats(ctx, h.rdb)
	if err != nil {
		return r, err
	}
	r.IdleCommandsPerWorker = float64(stats.total()) / c.IdleWindow.Seconds() / float64(c.SustainedWorkers)
	r.IdleTop = stats.top(5)
	h.logf("    idle: %.0f commands/s per worker (%v)", r.IdleCommandsPerWorker, r.IdleTop)
	return r, nil
}

// steadyRun is one open-loop run's outcome.
type steadyRun struct {
	timings []orderTiming
	phases  []Phase
	errors  int
}

// steady sends orders at rate for d with the open-loop driver, waits up to
// drain for the last ones, and breaks their latency down.
func (h *harness) steady(ctx context.Context, sub submitter, store *statemachine.Store, prefix string, rate float64, d, drain time.Duration) (steadyRun, error) {
	n := max(1, int(rate*d.Seconds()))
	l := newOpenLoop(rate, n, prefix)
	if err := l.run(ctx, h.rdb, sub, drain); err != nil {
		return steadyRun{}, err
	}
	return h.finishSteady(ctx, l, store)
}

// finishSteady settles a finished open loop and breaks its latency down.
func (h *harness) finishSteady(ctx context.Context, l *openLoop, store *statemachine.Store) (steadyRun, error) {
	if err := l.settle(ctx, store); err != nil {
		return steadyRun{}, err
	}
	begin := l.beganAt()
	r := steadyRun{timings: l.timings(time.Since(begin))}
	l.mu.Lock()
	r.errors = l.errors
	firstErr := l.firstErr
	l.mu.Unlock()
	if r.errors == l.n {
		return r, fmt.Errorf("no order started: %w", firstErr)
	}
	if r.errors > 0 {
		h.logf("    %d orders failed to start; the first: %v", r.errors, firstErr)
	}
	r.phases = breakdown(ctx, store, begin, r.timings, 5000)
	return r, nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
