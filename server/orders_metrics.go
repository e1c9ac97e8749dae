package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/statemachine"
)

// The bounds of orderflow_orders_running. The count is made at scrape time
// from the list index, newest first (statemachine.Store.EachRecent: one
// index read and one pipelined HMGET per 500 orders), over at most
// RunningSampleCap orders: nothing is kept in Redis for it and nothing is
// added to the engine's path. A running order older than the newest
// RunningSampleCap orders is not counted, so under a large history the
// gauge is a lower bound (GET /v1/stats reads the same window and says
// whether it covered the whole index). A count serves every scrape for
// runningMaxAge, so that a pair of Prometheus servers costs one scan.
const (
	RunningSampleCap = 10000
	runningMaxAge    = 5 * time.Second
	runningTimeout   = 5 * time.Second
)

var ordersRunningDesc = prometheus.NewDesc("orderflow_orders_running",
	"Running orders per workflow state, counted at scrape time among the newest 10000 orders of the list index (older running orders are not counted).",
	[]string{"state"}, nil)

// runningCollector exports orderflow_orders_running{state}. The API
// process registers it: the orders are the system's, like the task
// queues, and one API is scraped where every worker is.
type runningCollector struct {
	store *statemachine.Store
	// states are the states every count reports, 0 when no order is in
	// them, so that their series do not vanish: every state that is not
	// terminal of every workflow version.
	states []string
	log    *slog.Logger

	mu   sync.Mutex
	at   time.Time
	last map[string]int
}

// newRunningCollector returns the collector of the running orders of the
// workflow versions of reg.
func newRunningCollector(store *statemachine.Store, reg *statemachine.Registry, log *slog.Logger) *runningCollector {
	seen := map[string]bool{}
	var states []string
	for _, d := range reg.All() {
		for i := range d.States {
			if s := d.States[i]; !s.Terminal() && !seen[s.Name] {
				seen[s.Name] = true
				states = append(states, s.Name)
			}
		}
	}
	return &runningCollector{store: store, states: states, log: log}
}

// Describe implements prometheus.Collector.
func (c *runningCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ordersRunningDesc }

// Collect implements prometheus.Collector. When Redis cannot be read it
// logs and reports nothing, like the task queues' collector.
func (c *runningCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.count()
	if err != nil {
		c.log.Warn("counting the running orders for metrics", "err", err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(ordersRunningDesc, prometheus.GaugeValue, float64(n), state)
	}
}

// count returns the running orders per state, from the cache while it is
// fresh.
func (c *runningCollector) count() (map[string]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.last != nil && now.Sub(c.at) < runningMaxAge && !now.Before(c.at) {
		return c.last, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), runningTimeout)
	defer cancel()
	counts := make(map[string]int, len(c.states))
	for _, s := range c.states {
		counts[s] = 0
	}
	err := c.store.EachRecent(ctx, RunningSampleCap, func(ds []*statemachine.Digest) error {
		for _, d := range ds {
			if d.Status == statemachine.StatusRunning {
				counts[d.State]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.at, c.last = now, counts
	return counts, nil
}
