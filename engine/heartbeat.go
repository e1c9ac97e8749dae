package engine

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Long steps. A state with a Heartbeat runs a step that may take minutes (a
// shipment followed until delivery). Its activity reports progress with
// Heartbeat at least every Heartbeat interval: each call renews the lease,
// records the progress in the instance (the API shows it) and keeps the
// checkpoint (results such as the shipment's ID) in the record. The lease
// is renewed by nothing else, so a step that falls silent loses it and the
// reaper hands the step to another worker, whose activity finds the
// checkpoint and goes on from it rather than starting over.

// Progress is what a long step reports in a heartbeat.
type Progress struct {
	// Percent done, 0 to 100.
	Percent int `json:"percent"`
	// Detail says what the step is doing, for people.
	Detail string `json:"detail,omitempty"`
	// Checkpoint holds results to keep now (such as "shipment_id"), so
	// that a worker that takes the step over resumes from them.
	Checkpoint map[string]string `json:"-"`
}

// ErrNoHeartbeat is returned by Heartbeat outside a long step.
var ErrNoHeartbeat = errors.New("heartbeat outside a long step")

// ErrLeaseLost is returned by Heartbeat when another worker took the step
// over; the activity should stop.
var ErrLeaseLost = errors.New("the step was taken over by another worker")

// heartbeatKey carries a long step's heartbeat function in its context.
type heartbeatKey struct{}

// Heartbeat reports a long step's progress from its activity. It fails with
// ErrLeaseLost when the step was handed to another worker (the activity's
// context is then cancelled too), and with ErrNoHeartbeat when the step is
// not a long one.
func Heartbeat(ctx context.Context, p Progress) error {
	f, ok := ctx.Value(heartbeatKey{}).(func(Progress) error)
	if !ok {
		return ErrNoHeartbeat
	}
	return f(p)
}

// heartbeats returns the context of a long step's activity, whose
// Heartbeat renews the run's lease and records progress, and a func that
// stops its watchdog. lost cancels the activity when the lease is gone:
// taken over by another worker, or run out because the step fell silent for
// longer than timeout.
func (r *run) heartbeats(ctx context.Context, step string, timeout time.Duration, lost context.CancelFunc) (context.Context, func()) {
	watchdog := time.AfterFunc(timeout, func() {
		r.log.Warn("a long step fell silent for longer than its heartbeat timeout; it is abandoned to another worker", "step", step)
		lost()
	})
	hb := func(p Progress) error {
		p.Percent = min(max(p.Percent, 0), 100)
		rec, _ := json.Marshal(struct {
			Step string `json:"step"`
			Progress
			At time.Time `json:"at"`
		}{step, p, time.Now().UTC()})
		until := r.e.store.Now().Add(timeout)
		ok, err := r.e.store.Heartbeat(context.WithoutCancel(ctx), r.id, r.token, until, string(rec), p.Checkpoint)
		if err != nil {
			// Redis is away: the lease may still be ours; the next
			// heartbeat tries again, and the watchdog gives up in time.
			r.log.Warn("recording a heartbeat", "err", err)
			return nil
		}
		if !ok {
			r.log.Warn("lease lost during a long step; another worker takes it over")
			lost()
			return ErrLeaseLost
		}
		watchdog.Reset(timeout)
		r.inst.LeaseUntil = until
		for k, v := range p.Checkpoint {
			r.inst.Results[k] = v
		}
		return nil
	}
	return context.WithValue(ctx, heartbeatKey{}, hb), func() { watchdog.Stop() }
}
