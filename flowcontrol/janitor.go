package flowcontrol

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// The janitor. A slot whose holder died comes free when its lease runs
// out, and no release wakes its line then; a waiter cancelled while parked
// stays in line until someone looks. So one worker at a time (the holder
// of janitorKey) sweeps every line with waiters each JanitorInterval:
// lapsed holders and waiters go, the waiters that free slots belong to are
// woken if they have not asked for a while, and lines left without
// waiters leave the index.

// Run runs the janitor until ctx ends. A worker runs it when it has
// concurrency limits.
func (f *Flow) Run(ctx context.Context) {
	if len(f.cfg.Limits) == 0 {
		return
	}
	t := time.NewTicker(f.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.sweep(ctx); err != nil && ctx.Err() == nil {
			f.log.Debug("sweeping the lines of the concurrency limits", "err", err)
		}
	}
}

// sweep sweeps every line with waiters, if no other worker has the turn.
func (f *Flow) sweep(ctx context.Context) error {
	turn, err := lockScript.Run(ctx, f.rdb, []string{janitorKey}, f.id, (2 * f.cfg.JanitorInterval).Milliseconds()).Int()
	if err != nil || turn != 1 {
		return err
	}
	zs, err := f.rdb.ZRangeWithScores(ctx, waitingKey, 0, 999).Result()
	if err != nil {
		return err
	}
	for _, z := range zs {
		tag, _ := z.Member.(string)
		step, field, ok := limitOfTag(tag)
		if !ok {
			continue
		}
		l, ok := f.limitOf(step, field)
		if !ok {
			continue // a limit this worker was not given; a worker that has it sweeps it
		}
		if err := f.sweepLine(ctx, slot{limit: l, keys: keysOfTag(tag)}, z); err != nil {
			return err
		}
	}
	return nil
}

// sweepLine sweeps one line.
func (f *Flow) sweepLine(ctx context.Context, s slot, indexed redis.Z) error {
	ln, err := f.release(ctx, s, "", "")
	if err != nil {
		return err
	}
	if ln.waiting == 0 {
		return unindexScript.Run(ctx, f.rdb, []string{waitingKey}, s.keys.tag, indexed.Score).Err()
	}
	// A head that asked lately is on its way (a release woke it); one that
	// has not was never woken, or its wake-up was lost. When this sweep
	// freed a dead holder's slot, no release woke anyone: every head goes.
	var stale []string
	for _, h := range ln.heads {
		if ln.lapsed > 0 || time.Since(h.asked) > 2*f.cfg.JanitorInterval {
			stale = append(stale, h.id)
		}
	}
	if len(stale) > 0 {
		f.serveLine(ctx, s, stale)
	}
	return nil
}

// limitOf returns this worker's limit on step by field.
func (f *Flow) limitOf(step, field string) (Limit, bool) {
	for _, l := range f.byStep[step] {
		if l.Field == field {
			return l, true
		}
	}
	return Limit{}, false
}
