package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
)

// logCalls appends call events to a provider's call log, shuffled a little
// as concurrent appends may be.
func (b *testBundle) logCalls(provider string, evs []providers.CallEvent) {
	b.t.Helper()
	for i := range evs {
		if j := i + rand.IntN(3); j < len(evs) && evs[j].At.Sub(evs[i].At) < 5*time.Millisecond {
			evs[i], evs[j] = evs[j], evs[i]
		}
	}
	for _, ev := range evs {
		ev.Provider = provider
		raw, err := json.Marshal(ev)
		require.NoError(b.t, err)
		require.NoError(b.t, b.rdb.RPush(context.Background(), "{sim:"+provider+"}:calls", raw).Err())
	}
}

// call returns the two events of a call of customer from start, lasting d.
func call(id, op, customer string, start time.Time, d time.Duration) []providers.CallEvent {
	ev := providers.CallEvent{Call: id, Op: op, CustomerID: customer, OrderID: "o-" + id, Key: "o-" + id + ":" + op}
	s, e := ev, ev
	s.At, s.Event = start, providers.CallStart
	e.At, e.Event = start.Add(d), providers.CallEnd
	return []providers.CallEvent{s, e}
}

func TestFlowRulesReadTheProvidersCallLog(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		limits := &audit.FlowLimits{
			Rates:       map[string]audit.RateLimit{"payment": {PerSecond: 10, Burst: 2}},
			Concurrency: []audit.ConcurrencyLimit{{Provider: "payment", Op: "charge", Max: 1}},
			Jitter:      time.Millisecond,
		}
		// Within the limits: 10 calls a second for 3 seconds, each customer's
		// charges one after another.
		var ok []providers.CallEvent
		for i := range 30 {
			start := epoch.Add(time.Duration(i) * 100 * time.Millisecond)
			ok = append(ok, call(fmt.Sprint("ok", i), "charge", fmt.Sprint("c", i%3), start, 250*time.Millisecond)...)
		}
		b.logCalls("payment", ok)
		rep, err := audit.Run(context.Background(), b.rdb, audit.Config{Flow: limits, Now: epoch.Add(time.Hour)})
		require.NoError(t, err)
		require.True(t, rep.OK(), "%v", rep.Violations)
		require.Equal(t, 30, rep.Flow.Calls["payment"])
		require.Equal(t, 10, rep.Flow.MaxPerSecond["payment"])
		require.Equal(t, 1, rep.Flow.MaxInFlight["payment charge"])

		// Then a burst of 15 refunds within 100ms, and two overlapping
		// charges of one customer.
		later := epoch.Add(time.Minute)
		var bad []providers.CallEvent
		for i := range 15 {
			bad = append(bad, call(fmt.Sprint("burst", i), "refund", "", later.Add(time.Duration(i)*7*time.Millisecond), time.Millisecond)...)
		}
		bad = append(bad, call("a", "charge", "twice", later.Add(5*time.Second), time.Second)...)
		bad = append(bad, call("b", "charge", "twice", later.Add(5500*time.Millisecond), time.Second)...)
		b.logCalls("payment", bad)
		rep, err = audit.Run(context.Background(), b.rdb, audit.Config{Flow: limits, Now: epoch.Add(time.Hour)})
		require.NoError(t, err)
		rules := map[string]int{}
		for _, v := range rep.Violations {
			rules[v.Rule]++
		}
		require.Equal(t, map[string]int{audit.RuleRateExceeded: 1, audit.RuleConcurrencyExceeded: 1}, rules, "%v", rep.Violations)
		require.Equal(t, 15, rep.Flow.MaxPerSecond["payment"])
		require.Equal(t, 2, rep.Flow.MaxInFlight["payment charge"])
	})
}
