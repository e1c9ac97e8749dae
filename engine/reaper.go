package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// reapBatch is how many due instances one pass looks at.
const reapBatch = 200

// RunReaper scans the due index every ReaperInterval until ctx ends. Every
// worker runs one; due entries are claimed atomically, so each instance is
// looked at by one reaper at a time.
func (e *Engine) RunReaper(ctx context.Context) {
	t := time.NewTicker(e.cfg.ReaperInterval)
	defer t.Stop()
	trim := time.NewTicker(e.cfg.TrimInterval)
	defer trim.Stop()
	var cursor int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.Reap(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("reaper pass failed", "err", err)
			}
			e.countDeadLetters(ctx)
		case <-trim.C:
			// Finished instances expire after the retention; their list
			// entries go here, a slice at a time.
			next, removed, err := e.store.TrimIndex(ctx, e.store.Now().Add(-e.store.Retention()), cursor, trimBatch)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("trimming the list index", "err", err)
				continue
			}
			cursor = next
			if removed > 0 {
				e.log.Debug("trimmed the list index", "removed", removed)
			}
		}
	}
}

// countDeadLetters refreshes the dead-letter gauge.
func (e *Engine) countDeadLetters(ctx context.Context) {
	if e.metrics == nil {
		return
	}
	if n, err := e.store.DeadLetters(ctx); err == nil {
		e.metrics.DeadLetterOrders.Set(float64(n))
	}
}

// trimBatch is how many list entries one trim looks at.
const trimBatch = 500

// Reap runs one pass over the due index and returns how many instances it
// re-drove.
func (e *Engine) Reap(ctx context.Context) (int, error) {
	// Leases are judged by the Redis clock (see claim.lua), so the reaper
	// uses it too: a host whose clock runs ahead cannot re-drive live ones.
	now, err := e.store.RedisNow(ctx)
	if err != nil {
		return 0, err
	}
	due, err := e.store.DueBefore(ctx, now, reapBatch)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		// Claim the entry by pushing it forward; if this reaper dies the
		// entry comes due again.
		won, err := e.store.ClaimDue(ctx, d, now.Add(e.cfg.Lease))
		if err != nil {
			return n, err
		}
		if !won {
			continue
		}
		redriven, err := e.inspect(ctx, d.ID, now)
		if err != nil {
			return n, fmt.Errorf("inspecting %s: %w", d.ID, err)
		}
		if redriven {
			n++
		}
	}
	return n, nil
}

// inspect decides what a due instance needs and reports whether it was
// re-driven.
func (e *Engine) inspect(ctx context.Context, id string, now time.Time) (bool, error) {
	in, err := e.store.Load(ctx, id)
	if errors.Is(err, statemachine.ErrNotFound) {
		return false, e.store.RemoveDue(ctx, id)
	}
	if err != nil {
		return false, err
	}
	switch {
	case in.Status.Terminal():
		return false, e.store.RemoveDue(ctx, id)
	case in.LeaseToken != "" && in.LeaseUntil.After(now):
		return false, e.store.ScheduleDue(ctx, id, in.LeaseUntil)
	case in.DeadLetter != "":
		return false, e.store.ScheduleDue(ctx, id, now.Add(deadLetterRecheck))
	case in.NextAt.After(now):
		return false, e.store.ScheduleDue(ctx, id, in.NextAt.Add(e.cfg.RetryGrace))
	}
	queue := statemachine.DefaultQueue
	if def, err := e.registry.Get(in.Workflow, in.Version); err == nil {
		if st, ok := def.State(in.State); ok {
			queue = def.QueueOf(st)
		}
	}
	reason := "lease_expired"
	if in.LeaseToken == "" {
		// Nobody holds it: is the task meant to drive it still queued?
		if in.Task != "" {
			waiting, err := e.queue.Waiting(ctx, queue, in.Task)
			if err != nil {
				return false, err
			}
			if waiting {
				return false, e.store.ScheduleDue(ctx, id, now.Add(e.cfg.PickupGrace))
			}
		}
		reason = "task_lost"
	}
	t := Task{InstanceID: id, Queue: queue, TaskID: fmt.Sprintf("adv:%s:%d:redrive:%d", id, in.Rev, now.UnixMilli())}
	// The due entry first, then the task: the worker that takes the task
	// writes its lease end after this deadline, never before it.
	if err := e.store.ScheduleDue(ctx, id, now.Add(e.cfg.PickupGrace)); err != nil {
		return false, err
	}
	if err := e.queue.Enqueue(ctx, t); err != nil {
		return false, err
	}
	e.metrics.redrive(reason)
	e.log.Info("re-drove instance", "order_id", id, "reason", reason, "state", in.State)
	return true, nil
}
