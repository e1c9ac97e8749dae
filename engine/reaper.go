package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// reapBatch is how many due entries one batch of a pass looks at.
const reapBatch = 500

// RunReaper scans the due index every ReaperInterval until ctx ends. Every
// worker runs one; due entries are claimed atomically, so each instance is
// looked at by one reaper at a time.
func (e *Engine) RunReaper(ctx context.Context) {
	t := time.NewTicker(e.cfg.ReaperInterval)
	defer t.Stop()
	trim := time.NewTicker(e.cfg.TrimInterval)
	defer trim.Stop()
	var cursor statemachine.TrimCursor
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.Reap(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("reaper pass failed", "err", err)
			}
			e.observeDue(ctx)
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

// observeDue refreshes the gauges of the due index (its size, and how late
// its oldest entry is) and of the dead letters.
func (e *Engine) observeDue(ctx context.Context) {
	if e.metrics == nil {
		return
	}
	if n, oldest, err := e.store.DueStats(ctx); err == nil {
		e.metrics.DueEntries.Set(float64(n))
		lag := 0.0
		if now := e.store.Now(); !oldest.IsZero() && oldest.Before(now) {
			lag = now.Sub(oldest).Seconds()
		}
		e.metrics.DueLag.Set(lag)
	}
	if n, err := e.store.DeadLetters(ctx); err == nil {
		e.metrics.DeadLetterOrders.Set(float64(n))
	}
}

// trimBatch is how many list entries one trim looks at.
const trimBatch = 500

// Reap runs one pass over the due index and returns how many instances it
// re-drove. It works in batches: one round trip claims a batch of due
// entries, one reads their instances, one writes the corrections, so a
// worker's reaper keeps up with thousands of entries a second. A pass ends
// when nothing more is due, or after maxReapRounds batches.
func (e *Engine) Reap(ctx context.Context) (int, error) {
	// Leases are judged by the Redis clock (see claim.lua), so the reaper
	// uses it too: a host whose clock runs ahead cannot re-drive live ones.
	e.store.EnsureClock(ctx)
	now, err := e.store.RedisNow(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for range maxReapRounds {
		due, err := e.store.DueBefore(ctx, now, reapBatch)
		if err != nil || len(due) == 0 {
			return n, err
		}
		redriven, err := e.reapBatch(ctx, due, now)
		n += redriven
		if err != nil || len(due) < reapBatch {
			return n, err
		}
	}
	return n, nil
}

// maxReapRounds bounds the batches of one pass.
const maxReapRounds = 20

// reapBatch claims a batch of due entries and acts on each.
func (e *Engine) reapBatch(ctx context.Context, due []statemachine.DueEntry, now time.Time) (int, error) {
	// Claim the entries by pushing them forward; if this reaper dies they
	// come due again.
	won, err := e.store.ClaimDueBatch(ctx, due, now.Add(e.cfg.Lease))
	if err != nil {
		return 0, err
	}
	var ids []string
	for i, d := range due {
		if won[i] {
			ids = append(ids, d.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	insts, err := e.store.Peek(ctx, ids)
	if err != nil {
		return 0, err
	}
	var updates []statemachine.DueUpdate
	var redrive []*statemachine.Instance
	for i, in := range insts {
		if u, ok := e.judge(ids[i], in, now); ok {
			updates = append(updates, u)
			continue
		}
		redrive = append(redrive, in)
	}
	if err := e.store.UpdateDue(ctx, updates); err != nil {
		return 0, err
	}
	n := 0
	for _, in := range redrive {
		ok, err := e.redrive(ctx, in, now)
		if err != nil {
			return n, fmt.Errorf("re-driving %s: %w", in.ID, err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// judge decides what a due instance needs without a task: a removal (it is
// gone or finished) or a later due time (someone holds it, it waits for a
// retry, or it is parked). It reports false when the instance needs a task.
func (e *Engine) judge(id string, in *statemachine.Instance, now time.Time) (statemachine.DueUpdate, bool) {
	switch {
	case in == nil || in.Status.Terminal():
		return statemachine.DueUpdate{ID: id}, true
	case in.LeaseToken != "" && in.LeaseUntil.After(now):
		return statemachine.DueUpdate{ID: id, At: in.LeaseUntil}, true
	case in.DeadLetter != "":
		return statemachine.DueUpdate{ID: id, At: now.Add(deadLetterRecheck)}, true
	case in.NextAt.After(now):
		return statemachine.DueUpdate{ID: id, At: in.NextAt.Add(e.cfg.RetryGrace)}, true
	}
	return statemachine.DueUpdate{}, false
}

// redrive queues a task for an instance whose lease ran out, or whose task
// was lost, and reports whether it did.
func (e *Engine) redrive(ctx context.Context, in *statemachine.Instance, now time.Time) (bool, error) {
	id := in.ID
	queue := statemachine.QueueName(statemachine.DefaultQueue, in.Priority)
	if def, err := e.registry.Get(in.Workflow, in.Version); err == nil {
		if st, ok := def.State(in.State); ok {
			queue = in.QueueOf(def, st)
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
				return false, e.store.ScheduleDue(ctx, id, now.Add(e.cfg.PickupGrace), "")
			}
		}
		reason = "task_lost"
	}
	t := Task{InstanceID: id, Queue: queue, TaskID: fmt.Sprintf("adv:%s:%d:redrive:%d", id, in.Rev, now.UnixMilli())}
	// The due entry first, then the task: the worker that takes the task
	// writes its lease end after this deadline, never before it.
	if err := e.store.ScheduleDue(ctx, id, now.Add(e.cfg.PickupGrace), queue); err != nil {
		return false, err
	}
	if err := e.queue.Enqueue(ctx, t); err != nil {
		return false, err
	}
	e.metrics.redrive(reason)
	e.log.Info("re-drove instance", "order_id", id, "reason", reason, "state", in.State)
	return true, nil
}
