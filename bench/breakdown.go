package bench

import (
	"context"
	"sync"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Phase is one part of the orders' path from scheduled start to finish
// notification, with its percentiles over the orders looked at.
type Phase struct {
	Name     string
	P50, P99 time.Duration
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

// breakdown splits the latency of up to limit finished orders (spread over
// the run) into the phases of their path.
func breakdown(ctx context.Context, store *statemachine.Store, begin time.Time, ts []orderTiming, limit int) []Phase {
	var picked []orderTiming
	for _, t := range ts {
		if !t.failed && !t.unfinished {
			picked = append(picked, t)
		}
	}
	if len(picked) > limit {
		step := float64(len(picked)) / float64(limit)
		sample := make([]orderTiming, 0, limit)
		for i := range limit {
			sample = append(sample, picked[int(float64(i)*step)])
		}
		picked = sample
	}
	phases := make([][]time.Duration, 5)
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
	for _, t := range picked {
		work <- t
	}
	close(work)
	wg.Wait()
	out := make([]Phase, 0, len(phases))
	for i, name := range []string{PhaseDriver, PhaseStart, PhasePickup, PhaseSteps, PhaseNotify} {
		p50, p99 := quantiles(phases[i])
		out = append(out, Phase{Name: name, P50: p50, P99: p99})
	}
	return out
}
