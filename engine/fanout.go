package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orderflow/orderflow/statemachine"
)

// Fan-out and fan-in. A state with Branches runs its step once per branch,
// in parallel (one goroutine each, within one run and one lease), each
// branch with attempts, results and declines of its own in the record
// ("reserve@east", "reservation_id@east"). A branch's outcome becomes
// definite when it succeeds, is declined, or runs out of attempts without
// an answer (in doubt); branches that need another attempt are retried
// together after the backoff, and only those. When every branch is
// definite, the state's Join decides what to fire, in the same
// compare-and-set that records the last outcomes: the fan-in is decided
// exactly once, whatever the interleaving of crashes, retries and
// duplicate deliveries. A signal that arrives meanwhile (a cancel) is acted
// on at the branches' boundary, with every outcome so far recorded, so a
// compensation knows what to undo.

// branchKey carries a fan-out branch's name in its activity's context.
type branchKey struct{}

// Branch returns the fan-out branch an activity runs for, or "".
func Branch(ctx context.Context) string {
	b, _ := ctx.Value(branchKey{}).(string)
	return b
}

// branches returns the fan-out's branches: those fixed in the record when
// the state was entered, else the definition's.
func (r *run) branches(st *statemachine.State) []string {
	if len(r.inst.Branches) > 0 {
		return r.inst.Branches
	}
	return st.Branches
}

// openBranches returns the branches without a definite outcome.
func (r *run) openBranches(st *statemachine.State) []string {
	var open []string
	for _, b := range r.branches(st) {
		if r.inst.BranchOutcome[statemachine.BranchKey(st.Step, b)] == "" {
			open = append(open, b)
		}
	}
	return open
}

// beginFanout begins an attempt of every open branch in one durable write.
func (r *run) beginFanout(ctx context.Context, st *statemachine.State) error {
	return r.commitLoop(ctx, st, func() decision {
		if r.inst.Paused {
			return decision{skip: true} // paused meanwhile: no branch begins
		}
		var f statemachine.Fields
		if len(r.inst.Branches) == 0 {
			f.Branches(st.Branches)
		}
		for _, b := range r.openBranches(st) {
			k := statemachine.BranchKey(st.Step, b)
			f.Attempt(k, r.inst.Attempts[k]+1)
		}
		if !r.inst.NextAt.IsZero() {
			f.NextAt(time.Time{})
		}
		return decision{change: statemachine.Change{
			State: st.Name, Status: st.Status, Fields: f,
			LeaseUntil: r.e.store.Now().Add(r.leaseFor(st)), Durable: true,
		}, begins: true}
	})
}

// runFanout runs the open branches' attempts, which this run began, and
// commits their outcomes, with the fan-in when every branch is definite. It
// reports done when the run must end (a retry is due later).
func (r *run) runFanout(ctx context.Context, st *statemachine.State) (done bool, err error) {
	open := r.openBranches(st)
	outs := make(map[string]outcome, len(open))
	actx, cancel := context.WithCancel(ctx)
	stop := r.keepLease(actx, cancel)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range open {
		wg.Go(func() {
			out := r.runBranch(actx, st, b)
			mu.Lock()
			outs[b] = out
			mu.Unlock()
		})
	}
	wg.Wait()
	stop()
	cancel()
	// The branches' calls were admitted as one attempt: report it, before
	// the outcome is committed, as runStep's caller does for a step.
	r.settleAdmission(ctx, fanoutErr(outs))
	var d decision
	applied, err := r.commitLoopApplied(ctx, st, func() decision {
		d = r.decideFanout(st, outs)
		return d
	})
	if err != nil || r.inst == nil {
		return true, err
	}
	if applied && d.plan != nil {
		return true, r.scheduleRetry(ctx, st, d.plan)
	}
	if applied && d.parked {
		return true, r.parked(ctx, st)
	}
	return false, nil
}

// fanoutErr is the outcome of a fan-out's calls as flow control counts it:
// the first error that is not a decline (the provider did not work), or
// nil when every call got an answer.
func fanoutErr(outs map[string]outcome) error {
	for _, b := range sortedKeys(outs) {
		if err := outs[b].err; err != nil && !classify(err).permanent {
			return err
		}
	}
	return nil
}

// runBranch runs one branch's attempt (runFanout renews the lease for all).
func (r *run) runBranch(ctx context.Context, st *statemachine.State, b string) outcome {
	k := statemachine.BranchKey(st.Step, b)
	start := time.Now()
	sctx, span := r.startStep(ctx, st.Step, b, r.inst.Attempts[k])
	res, err := callActivity(context.WithValue(sctx, branchKey{}, b), r.e.activities[st.Step], r.inst)
	endSpan(span, err)
	verdict := "success"
	if err != nil {
		verdict = "error"
		r.log.Info("branch failed", "step", st.Step, "branch", b, "attempt", r.inst.Attempts[k], "err", err)
	}
	r.e.metrics.step(r.inst.Workflow, st.Step, verdict, time.Since(start))
	return outcome{results: res, err: err, attempt: r.inst.Attempts[k], at: r.e.store.Now()}
}

// decideFanout records the branches' outcomes and decides what follows:
// the fan-in when every branch is definite, a signal's transition when one
// is pending, or a retry of the branches that need one.
func (r *run) decideFanout(st *statemachine.State, outs map[string]outcome) decision {
	now := r.e.store.Now()
	policy := r.inst.PolicyOf(st.Step, st.Retry)
	var f statemachine.Fields
	kinds := map[string]string{}
	var retry []outcome
	var errs []string
	for _, b := range sortedKeys(outs) {
		out, k := outs[b], statemachine.BranchKey(st.Step, b)
		switch {
		case out.err == nil:
			for name, v := range out.results {
				f.Result(statemachine.BranchKey(name, b), v)
			}
			kinds[b] = statemachine.BranchSucceeded
		case classify(out.err).permanent:
			f.Declined(k, true)
			kinds[b] = statemachine.BranchDeclined
		case policy.Exhausted(out.attempt):
			kinds[b] = statemachine.BranchInDoubt
		default:
			retry = append(retry, out)
		}
		if out.err != nil {
			errs = append(errs, b+": "+out.err.Error())
		}
		if kind := kinds[b]; kind != "" {
			f.BranchOutcome(k, kind)
			f.BranchAt(k, out.at)
		}
	}
	if sig, ev := pendingSignal(st, r.inst); ev != "" {
		return r.signalChangeWith(st, sig, ev, outcome{}, f)
	}
	ev := &statemachine.Event{Step: st.Step}
	if len(errs) > 0 {
		msg := strings.Join(errs, "; ")
		f.Error(msg)
		ev.Error = msg
	}
	if len(retry) > 0 {
		// The slowest branch's backoff, and the largest Retry-After.
		worst := retry[0]
		for _, o := range retry[1:] {
			if o.attempt > worst.attempt || classify(o.err).retryAfter > classify(worst.err).retryAfter {
				worst = o
			}
		}
		return r.retryChange(st, f, ev, worst)
	}
	join := st.Join(r.joinInput(st, outs, kinds, now))
	for k, v := range join.Results {
		f.Result(k, v)
	}
	if join.Event == "" {
		return r.retryChange(st, f, ev, outcome{err: fmt.Errorf("%s: the join decided nothing", st.Name)})
	}
	if r.inst.Reason == "" {
		if dst, err := r.def.Destination(st.Name, join.Event); err == nil {
			if next, _ := r.def.State(dst); next != nil && (next.Compensation || next.Status == statemachine.StatusFailed) {
				f.Reason(statemachine.ReasonFailed)
			}
		}
	}
	return r.moveChange(st, join.Event, f, ev)
}

// joinInput gathers every branch's outcome: those recorded before, and
// those of this run.
func (r *run) joinInput(st *statemachine.State, outs map[string]outcome, kinds map[string]string, now time.Time) statemachine.JoinInput {
	var in statemachine.JoinInput
	for _, b := range r.branches(st) {
		k := statemachine.BranchKey(st.Step, b)
		kind, at := r.inst.BranchOutcome[k], r.inst.BranchAt[k]
		results := map[string]string{}
		if nk, ok := kinds[b]; ok {
			kind, at = nk, outs[b].at
			for name, v := range outs[b].results {
				results[name] = v
			}
		} else {
			suffix := statemachine.BranchSep + b
			for name, v := range r.inst.Results {
				if base, ok := strings.CutSuffix(name, suffix); ok {
					results[base] = v
				}
			}
		}
		in.Branches = append(in.Branches, statemachine.BranchOutcome{
			Branch: b, Results: results, At: at,
			Succeeded: kind == statemachine.BranchSucceeded,
			Declined:  kind == statemachine.BranchDeclined,
			InDoubt:   kind == statemachine.BranchInDoubt,
		})
	}
	return in
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
