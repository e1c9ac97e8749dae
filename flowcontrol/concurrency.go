package flowcontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Concurrency limits. Each value of a limited input field (one customer)
// has a line: its slots, each held by an instance under a lease that the
// running attempt renews, and its waiters, first come first served. An
// attempt that finds no slot parks (engine.Admission.Park); the attempt
// that frees a slot wakes the waiters the free slots belong to
// (Engine.Wake). A slot whose holder died comes free when its lease runs
// out; the janitor (Flow.Run) then wakes the line.

// slot is one line an attempt needs a slot of.
type slot struct {
	limit Limit
	keys  slotKeys
}

// slotsFor returns the lines an attempt of st by in needs a slot of: those
// of st's step, and of the step it settles when that one is in doubt.
func (f *Flow) slotsFor(in *statemachine.Instance, st *statemachine.State, settling *Settle) []slot {
	limits := f.byStep[st.Step]
	if settling != nil {
		limits = append(limits[:len(limits):len(limits)], f.byStep[settling.Step]...)
	}
	if len(limits) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(in.Input, &fields); err != nil {
		// Not an object: no field to limit by.
		return nil
	}
	out := make([]slot, 0, len(limits))
	for _, l := range limits {
		v, ok := fieldValue(fields, l.Field)
		if !ok {
			continue
		}
		out = append(out, slot{limit: l, keys: keysOfTag(slotTag(l, v))})
	}
	return out
}

// fieldValue returns a top-level field of an input as text: a string's
// value, or any other JSON value as written. A missing or null field has
// none.
func fieldValue(fields map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	return string(raw), true
}

// acquired is the answer of acquire.lua.
type acquired struct {
	granted  bool
	position int64
	// heads are waiters to wake: slots came free by expiry.
	heads []string
}

func (f *Flow) acquire(ctx context.Context, s slot, instance, attemptID string) (acquired, error) {
	k := s.keys
	res, err := acquireScript.Run(ctx, f.rdb, []string{k.holders, k.nonces, k.waiters, k.deadlines},
		instance, attemptID, s.limit.Max, f.cfg.Lease.Milliseconds(), f.cfg.WaiterTTL.Milliseconds()).Slice()
	if err != nil {
		return acquired{}, fmt.Errorf("asking for a slot of %s: %w", s.keys.tag, err)
	}
	var a acquired
	if len(res) < 2 {
		return a, fmt.Errorf("asking for a slot of %s: unexpected answer %v", s.keys.tag, res)
	}
	g, _ := res[0].(int64)
	a.granted = g == 1
	a.position, _ = res[1].(int64)
	for _, h := range res[2:] {
		if id, ok := h.(string); ok {
			a.heads = append(a.heads, id)
		}
	}
	return a, nil
}

// line is a line after a release or a sweep.
type line struct {
	waiting int64
	// lapsed counts the holders whose lease had run out (their worker
	// died), dropped by this release or sweep.
	lapsed int64
	// heads are the waiters the free slots belong to, first first.
	heads []head
}

type head struct {
	id string
	// asked is when the waiter last asked for a slot.
	asked time.Time
}

// release gives an attempt's slot back (instance "" gives none: a sweep)
// and returns the line.
func (f *Flow) release(ctx context.Context, s slot, instance, attemptID string) (line, error) {
	k := s.keys
	res, err := releaseScript.Run(ctx, f.rdb, []string{k.holders, k.nonces, k.waiters, k.deadlines},
		instance, attemptID, s.limit.Max).Slice()
	if err != nil {
		return line{}, fmt.Errorf("releasing a slot of %s: %w", s.keys.tag, err)
	}
	var l line
	if len(res) == 0 {
		return l, fmt.Errorf("releasing a slot of %s: empty answer", s.keys.tag)
	}
	if len(res) < 2 {
		return l, fmt.Errorf("releasing a slot of %s: unexpected answer %v", s.keys.tag, res)
	}
	l.waiting, _ = res[0].(int64)
	l.lapsed, _ = res[1].(int64)
	for i := 2; i+1 < len(res); i += 2 {
		id, _ := res[i].(string)
		lapse, _ := strconv.ParseFloat(fmt.Sprint(res[i+1]), 64)
		l.heads = append(l.heads, head{id: id, asked: time.UnixMilli(int64(lapse)).Add(-f.cfg.WaiterTTL)})
	}
	return l, nil
}

// renewSlot extends an attempt's slot; it reports false when the slot is
// no longer the attempt's.
func (f *Flow) renewSlot(ctx context.Context, s slot, instance, attemptID string) (bool, error) {
	n, err := renewScript.Run(ctx, f.rdb, []string{s.keys.holders, s.keys.nonces}, instance, attemptID, f.cfg.Lease.Milliseconds()).Int()
	return n == 1, err
}

// index records that a line has waiters, for the janitor. Its score
// counts the waits, so that the janitor, which drops a line it found
// empty only if the score is still the one it read, never drops one that
// someone joined meanwhile.
func (f *Flow) index(ctx context.Context, s slot) {
	if err := f.rdb.ZIncrBy(ctx, waitingKey, 1, s.keys.tag).Err(); err != nil {
		f.log.Warn("indexing a line of waiters; the waiter is woken by the next release or its own recheck", "line", s.keys.tag, "err", err)
	}
}

// serveLine wakes the waiters the free slots of a line belong to. A waiter
// that no longer waits for the step (cancelled, or moved on, while parked)
// is taken out of the line, and the next one is looked at.
func (f *Flow) serveLine(ctx context.Context, s slot, heads []string) {
	woken := map[string]bool{}
	for round := 0; round < 8 && len(heads) > 0; round++ {
		dropped := false
		for _, id := range heads {
			if woken[id] {
				continue
			}
			live, err := f.waits(ctx, id, s.limit.Step)
			if err != nil {
				f.log.Warn("checking a waiter; the janitor looks again", "line", s.keys.tag, "order_id", id, "err", err)
				return
			}
			if !live {
				if err := dropScript.Run(ctx, f.rdb, []string{s.keys.waiters, s.keys.deadlines}, id).Err(); err != nil {
					f.log.Warn("dropping a waiter that left", "line", s.keys.tag, "order_id", id, "err", err)
					return
				}
				dropped = true
				continue
			}
			woken[id] = true
			f.metrics.wakeup()
			if err := f.engine().Wake(ctx, id); err != nil {
				f.log.Warn("waking a waiter; its recheck brings it back", "line", s.keys.tag, "order_id", id, "err", err)
			}
		}
		if !dropped {
			return
		}
		l, err := f.release(ctx, s, "", "")
		if err != nil {
			f.log.Warn("reading a line", "line", s.keys.tag, "err", err)
			return
		}
		heads = heads[:0]
		for _, h := range l.heads {
			heads = append(heads, h.id)
		}
	}
}

// waits reports whether instance id still waits to run step (or a step
// that settles it).
func (f *Flow) waits(ctx context.Context, id, step string) (bool, error) {
	e := f.engine()
	in, err := e.Store().Load(ctx, id)
	if errors.Is(err, statemachine.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if in.Status.Terminal() || in.DeadLetter != "" {
		return false, nil
	}
	def, err := e.Registry().Get(in.Workflow, in.Version)
	if err != nil {
		return true, nil // a version this worker lacks: leave it to one that has it
	}
	st, ok := def.State(in.State)
	if !ok {
		return false, nil
	}
	if st.Step == step {
		return true, nil
	}
	s := f.settling(in, st)
	return s != nil && s.Step == step, nil
}

// settling returns what st's step settles for in, when it does now.
func (f *Flow) settling(in *statemachine.Instance, st *statemachine.State) *Settle {
	s, ok := f.cfg.Settles[st.Step]
	if !ok || !in.InDoubt(s.Step, s.Result) {
		return nil
	}
	return &s
}
