package bench

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Phase is one part of the orders' path from scheduled start to finish
// notification, with its percentiles over the orders looked at, and its
// mean over the slowest 1% of orders: which part made them slow.
type Phase struct {
	Name     string
	P50, P99 time.Duration
	Tail     time.Duration
}

// The phases of an order's path. The driver's own clock gives the first
// two; the order's history (written by the workers, on the same host)
// gives the rest. Pickup starts at the instance's creation, which is part
// of Start, so the phases overlap by a fraction of a millisecond.
const (
	PhaseDriver = "driver lag (scheduled → Start called)"
	PhaseStart  = "Start (first task, then instance)"
	PhasePickup = "pickup (created → first transition)"
	PhaseSteps  = "steps (first transition → finished)"
	PhaseNotify = "notification (finished → driver)"
)

var phaseNames = []string{PhaseDriver, PhaseStart, PhasePickup, PhaseSteps, PhaseNotify}

// breakdown splits the latency of up to limit finished orders (spread over
// the run), and of the slowest 1%, into the phases of their path.
func breakdown(ctx context.Context, store *statemachine.Store, begin time.Time, ts []orderTiming, limit int) []Phase {
	var done []orderTiming
	for _, t := range ts {
		if !t.failed && !t.unfinished {
			done = append(done, t)
		}
	}
	sample := done
	if len(done) > limit {
		step := float64(len(done)) / float64(limit)
		sample = make([]orderTiming, 0, limit)
		for i := range limit {
			sample = append(sample, done[int(float64(i)*step)])
		}
	}
	slow := slices.Clone(done)
	slices.SortFunc(slow, func(a, b orderTiming) int { return int(b.latency() - a.latency()) })
	slow = slow[:(len(slow)+99)/100]
	all := phasesOf(ctx, store, begin, sample)
	tail := phasesOf(ctx, store, begin, slow)
	out := make([]Phase, len(phaseNames))
	for i, name := range phaseNames {
		p50, p99 := quantiles(all[i])
		out[i] = Phase{Name: name, P50: p50, P99: p99, Tail: mean(tail[i])}
	}
	return out
}

// phasesOf reads the orders' histories and returns, phase by phase, each
// order's time in it.
func phasesOf(ctx context.Context, store *statemachine.Store, begin time.Time, ts []orderTiming) [][]time.Duration {
	phases := make([][]time.Duration, len(phaseNames))
	var mu sync.Mutex
	work := make(chan orderTiming)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for t := range work {
				evs, err := store.History(ctx, t.id)
				if err != nil || len(evs) < 2 {
					continue
				}
				created, first, last := evs[0].At, evs[1].At, evs[len(evs)-1].At
				ds := []time.Duration{t.sent - t.sched, t.accepted - t.sent, first.Sub(created), last.Sub(first),
					begin.Add(t.finished).Sub(last)}
				mu.Lock()
				for i, d := range ds {
					phases[i] = append(phases[i], d)
				}
				mu.Unlock()
			}
		})
	}
	for _, t := range ts {
		work <- t
	}
	close(work)
	wg.Wait()
	return phases
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
