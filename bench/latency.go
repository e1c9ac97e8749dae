package bench

import (
	"slices"
	"time"
)

// LatencyRow is the end-to-end latency of the orders scheduled in one
// interval of a steady run (or in all of it), each timed from its
// scheduled start to its finish notification.
type LatencyRow struct {
	// Start is the interval's start, from the run's first order.
	Start time.Duration
	// Orders is how many orders were scheduled in the interval; orders
	// that failed to start are left out.
	Orders        int
	P50, P99, Max time.Duration
	// Unfinished orders count in the percentiles as finished when the run
	// stopped waiting for them (a lower bound).
	Unfinished int
}

// latencyOf summarises the orders' latency.
func latencyOf(ts []orderTiming) LatencyRow {
	var r LatencyRow
	lat := make([]time.Duration, 0, len(ts))
	for _, t := range ts {
		if t.failed {
			continue
		}
		if t.unfinished {
			r.Unfinished++
		}
		lat = append(lat, t.latency())
	}
	slices.Sort(lat)
	r.Orders = len(lat)
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// latencyRows summarises the orders interval by interval of their
// scheduled start.
func latencyRows(ts []orderTiming, interval time.Duration) []LatencyRow {
	var rows []LatencyRow
	for lo := 0; lo < len(ts); {
		k := int64(ts[lo].sched / interval)
		hi := lo
		for hi < len(ts) && int64(ts[hi].sched/interval) == k {
			hi++
		}
		r := latencyOf(ts[lo:hi])
		r.Start = time.Duration(k) * interval
		rows = append(rows, r)
		lo = hi
	}
	return rows
}

// quantiles returns the p50 and p99 of ds, which it sorts.
func quantiles(ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	return percentile(ds, 50), percentile(ds, 99)
}
