package chaos

import (
	"context"
	"fmt"
	"net/http"
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
func (s *system) measure(ctx context.Context, r *Result, accepted []string, held []orphan) error {
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
	var resumes []time.Duration
	for _, o := range held {
		evs, err := store.History(ctx, o.id)
		if err != nil {
			continue
		}
		for _, ev := range evs {
			if ev.At.After(o.killed) {
				resumes = append(resumes, ev.At.Sub(o.killed))
				break
			}
		}
	}
	sort.Slice(resumes, func(i, j int) bool { return resumes[i] < resumes[j] })
	if n := len(resumes); n > 0 {
		r.ResumeP50 = resumes[n/2]
		r.ResumeP99 = resumes[min(n-1, n*99/100)]
	}
	return nil
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
