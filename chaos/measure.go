package chaos

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/statemachine"
)

// statuses reads the status of each order ("" when it does not exist).
func statuses(ctx context.Context, rdb redis.UniversalClient, ids []string) (map[string]string, error) {
	cmds := make([]*redis.StringCmd, len(ids))
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, statemachine.RecordKey(id), "stt")
		}
		return nil
	}); err != nil && err != redis.Nil {
		return nil, err
	}
	out := make(map[string]string, len(ids))
	for i, id := range ids {
		out[id] = cmds[i].Val()
	}
	return out, nil
}

// waitFinished waits until every order is finished, or within passes.
func waitFinished(ctx context.Context, s *system, ids []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		st, err := statuses(ctx, s.conn.Client, ids)
		if err == nil {
			running := 0
			for _, v := range st {
				if v == "" || v == string(statemachine.StatusRunning) {
					running++
				}
			}
			if running == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d orders still unfinished after %s", running, within)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// measure counts outcomes, audits, and computes the resume times.
func (s *system) measure(ctx context.Context, r *Result, accepted []string, orphans []orphan) error {
	st, err := statuses(ctx, s.conn.Client, accepted)
	if err != nil {
		return err
	}
	for id, v := range st {
		switch statemachine.Status(v) {
		case statemachine.StatusCompleted:
			r.Completed++
		case statemachine.StatusFailed:
			r.Failed++
		case statemachine.StatusCancelled:
			r.Cancelled++
		default:
			r.Lost++
			r.LostOrders = append(r.LostOrders, s.describeLost(ctx, id, v))
		}
	}
	// Every order is finished: stop the simulators, which writes the last
	// events of their call logs, before the audit reads them.
	s.sim.Stop()
	if r.Audit, err = audit.Run(ctx, s.conn.Client, audit.Config{MaxRunning: time.Hour, Flow: flowLimits(s.cfg)}); err != nil {
		return err
	}
	for _, v := range r.Audit.Violations {
		switch v.Rule {
		case audit.RuleDoubleKey:
			r.DoubleEffects++
		case audit.RuleCompensated:
			r.LeftEffects++
		case audit.RuleDuplicateKey:
			r.DuplicateOrders++
		}
	}
	store := statemachine.NewStore(s.conn.Client, statemachine.StoreConfig{})
	defer store.Close()
	var held, inSlot, queued []time.Duration
	type slow struct {
		o    orphan
		d    time.Duration
		next statemachine.Event
	}
	var slowest []slow
	for _, o := range orphans {
		evs, err := store.History(ctx, o.id)
		if err != nil {
			continue
		}
		for _, ev := range evs {
			if ev.At.After(o.killed) {
				d := ev.At.Sub(o.killed)
				slowest = append(slowest, slow{o, d, ev})
				switch o.kind {
				case heldRunning:
					held = append(held, d)
				case heldSlot:
					held = append(held, d)
					inSlot = append(inSlot, d)
				case queuedBehind:
					queued = append(queued, d)
				}
				break
			}
		}
	}
	// The slowest resumes go to the log, to tell what they waited for.
	sort.Slice(slowest, func(i, j int) bool { return slowest[i].d > slowest[j].d })
	for _, sl := range slowest[:min(len(slowest), 10)] {
		s.logf("chaos: slow resume %s: %s after the kill at %s (%s in %s); next %s %s %s→%s",
			sl.o.id, sl.d.Round(time.Millisecond), sl.o.killed.Format("15:04:05.000"), []string{"held", "held in a slot", "queued behind a slot"}[sl.o.kind],
			sl.o.state, sl.next.Type, sl.next.Event, sl.next.From, sl.next.To)
	}
	s.logDwell(ctx, store, accepted)
	r.ResumeP50, r.ResumeP99 = percentiles(held)
	r.SlotResumeP50, r.SlotResumeP99 = percentiles(inSlot)
	r.QueuedResumeP50, r.QueuedResumeP99 = percentiles(queued)
	return nil
}

// logDwell logs how long orders stayed in each state of a step, kills or
// not: what a resume is to be compared with.
func (s *system) logDwell(ctx context.Context, store *statemachine.Store, ids []string) {
	dwell := map[string][]time.Duration{}
	for _, id := range ids {
		evs, err := store.History(ctx, id)
		if err != nil {
			continue
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Type == statemachine.EventTransition && evs[i].From != "" {
				// The time since the order entered the state.
				for j := i - 1; j >= 0; j-- {
					if evs[j].To == evs[i].From {
						dwell[evs[i].From] = append(dwell[evs[i].From], evs[i].At.Sub(evs[j].At))
						break
					}
				}
			}
		}
	}
	for _, st := range slices.Sorted(maps.Keys(dwell)) {
		p50, p99 := percentiles(dwell[st])
		s.logf("chaos: time in %s: p50 %s, p99 %s (%d orders)", st, p50.Round(time.Millisecond), p99.Round(time.Millisecond), len(dwell[st]))
	}
}

// percentiles returns the median and the 99th percentile of ds.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	n := len(ds)
	if n == 0 {
		return 0, 0
	}
	return ds[n/2], ds[min(n-1, n*99/100)]
}

// describeLost says where a lost order is: missing, or its state and its
// last history events, for the report.
func (s *system) describeLost(ctx context.Context, id, status string) string {
	if status == "" {
		return id + ": no such order"
	}
	store := statemachine.NewStore(s.conn.Client, statemachine.StoreConfig{})
	defer store.Close()
	in, err := store.Load(ctx, id)
	if err != nil {
		return id + ": " + err.Error()
	}
	desc := fmt.Sprintf("%s: v%d %s (lease %q until %s, next %s, paused %v, dead letter %q, attempts %v, error %q)",
		id, in.Version, in.State, in.LeaseToken, in.LeaseUntil.Format(time.RFC3339Nano), in.NextAt.Format(time.RFC3339Nano),
		in.Paused, in.DeadLetter, in.Attempts, in.LastError)
	if evs, err := store.History(ctx, id); err == nil {
		for _, ev := range evs[max(0, len(evs)-4):] {
			desc += fmt.Sprintf("; %s %s %s→%s %s", ev.At.Format("15:04:05.000"), ev.Type, ev.From, ev.To, ev.Event)
		}
	}
	return desc
}

// waitHTTP waits until url answers 200.
func waitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s", url, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
