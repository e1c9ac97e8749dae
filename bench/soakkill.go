package bench

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// KillResult is what happened to the orders of the worker the soak killed.
type KillResult struct {
	// Worker is the killed worker's ID, Replacement its successor's.
	Worker, Replacement string
	// At is when it was killed, from the load's begin.
	At time.Duration
	// Held is how many orders it held a live lease on when it died;
	// Resumed how many of them had a history event after the kill.
	Held, Resumed int
	// Resume times: from the kill to each held order's next history event.
	P50, P99, Max time.Duration

	killed time.Time
	held   []string
}

// killAndReplace SIGKILLs the first worker at KillAt, notes the orders it
// held, and starts a replacement, as the chaos harness does. It gives up
// when the run ends first.
func (s *soak) killAndReplace(ctx context.Context, done <-chan struct{}) {
	begin := s.loop.beganAt()
	t := time.NewTimer(s.cfg.KillAt - time.Since(begin))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-done:
		return
	case <-t.C:
	}
	s.mu.Lock()
	victim := s.slots[0]
	s.mu.Unlock()
	victim.proc.Kill()
	k := KillResult{Worker: victim.id, killed: time.Now()}
	k.At = k.killed.Sub(begin)
	// Its orders are among those scheduled and not yet announced finished;
	// the killed worker cannot change their records any more.
	var err error
	if k.held, err = heldBy(ctx, s.store, s.loop.pending(), victim.id, k.killed); err != nil {
		s.h.logf("soak: reading the killed worker's leases: %v", err)
	}
	k.Held = len(k.held)
	w, err := s.startWorker()
	if err != nil {
		s.h.logf("soak: starting a replacement worker: %v", err)
	} else {
		k.Replacement = w.id
		s.mu.Lock()
		s.slots[0] = w
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.kill = k
	s.mu.Unlock()
	s.h.logf("soak: killed worker %s at %s holding %d orders; %s replaces it", k.Worker, k.At.Round(time.Millisecond), k.Held, k.Replacement)
}

// heldBy returns the unfinished orders among ids whose live lease (at the
// time at) the worker held: its lease tokens start with its ID and a dash.
func heldBy(ctx context.Context, store *statemachine.Store, ids []string, workerID string, at time.Time) ([]string, error) {
	insts, err := store.Peek(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, in := range insts {
		if in != nil && in.Status == statemachine.StatusRunning && strings.HasPrefix(in.LeaseToken, workerID+"-") && in.LeaseUntil.After(at) {
			out = append(out, in.ID)
		}
	}
	return out, nil
}

// resume measures, for each held order, the time from the kill to its next
// history event.
func (k *KillResult) resume(ctx context.Context, store *statemachine.Store) {
	var ds []time.Duration
	for _, id := range k.held {
		evs, err := store.History(ctx, id)
		if err != nil {
			continue
		}
		for _, ev := range evs {
			if ev.At.After(k.killed) {
				ds = append(ds, ev.At.Sub(k.killed))
				break
			}
		}
	}
	slices.Sort(ds)
	k.Resumed = len(ds)
	k.P50, k.P99 = percentile(ds, 50), percentile(ds, 99)
	if len(ds) > 0 {
		k.Max = ds[len(ds)-1]
	}
}
