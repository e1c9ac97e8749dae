package api

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/statemachine"
)

// The bounds of GET /v1/stats. The counts come from the list index, newest
// first, in batches of 500 (one index read and one pipelined HMGET of a few
// fields per batch), up to statsScanLimit orders: nothing new is kept in
// Redis for them and nothing is added to the engine's path. Answers are
// shared for statsMaxAge by every caller of one API process, so a room
// full of dashboards costs one scan per interval.
const (
	statsScanLimit = 10000
	statsMaxAge    = 2 * time.Second
	// The throughput is counted in statsBuckets buckets of statsBucket,
	// the last one ending now.
	statsBuckets = 30
	statsBucket  = 20 * time.Second
)

// statsResponse is the body of GET /v1/stats.
type statsResponse struct {
	// At is when the counts were made.
	At time.Time `json:"at"`
	// Total is how many orders the list index holds (expired ones until
	// the reaper trims them); Counted is how many orders, the newest, the
	// counts cover, and Complete says whether the scan read the whole
	// index.
	Total    int64 `json:"total"`
	Counted  int   `json:"counted"`
	Complete bool  `json:"complete"`
	// The counts of the orders counted, by status, state (across
	// workflow versions), workflow version and priority.
	ByStatus   map[string]int `json:"by_status"`
	ByState    map[string]int `json:"by_state"`
	ByVersion  map[string]int `json:"by_version"`
	ByPriority map[string]int `json:"by_priority"`
	// DeadLetters is how many orders have a step parked for an operator.
	DeadLetters int64 `json:"dead_letters"`
	// Throughput is how many orders were created and finished in each
	// bucket of the last minutes.
	Throughput throughput `json:"throughput"`
}

// throughput counts orders per time bucket, oldest bucket first. Finished
// counts the orders counted whose last change (updated_at) is their end;
// an order created before the oldest order counted that finished in the
// window is missed, which only happens when more than statsScanLimit
// orders were created since.
type throughput struct {
	BucketSeconds int       `json:"bucket_seconds"`
	Since         time.Time `json:"since"`
	Created       []int     `json:"created"`
	Finished      []int     `json:"finished"`
}

// statsCache keeps the last answer of GET /v1/stats for statsMaxAge.
type statsCache struct {
	mu   sync.Mutex
	last *statsResponse
}

// getStats is GET /v1/stats.
func (s *Server) getStats(c echo.Context) error {
	cache := s.dash.stats
	cache.mu.Lock()
	defer cache.mu.Unlock()
	now := s.store.Now()
	if cache.last == nil || now.Sub(cache.last.At) >= statsMaxAge || now.Before(cache.last.At) {
		st, err := s.countOrders(c, now)
		if err != nil {
			return err
		}
		cache.last = st
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, cache.last)
}

// countOrders makes the counts of GET /v1/stats.
func (s *Server) countOrders(c echo.Context, now time.Time) (*statsResponse, error) {
	ctx := c.Request().Context()
	since := now.Add(-statsBuckets * statsBucket)
	st := &statsResponse{
		At:       now,
		ByStatus: map[string]int{}, ByState: map[string]int{}, ByVersion: map[string]int{}, ByPriority: map[string]int{},
		Throughput: throughput{
			BucketSeconds: int(statsBucket / time.Second), Since: since,
			Created: make([]int, statsBuckets), Finished: make([]int, statsBuckets),
		},
	}
	bucket := func(t time.Time) int {
		if t.Before(since) || !t.Before(now.Add(statsBucket)) {
			return -1
		}
		return min(int(t.Sub(since)/statsBucket), statsBuckets-1)
	}
	err := s.store.EachRecent(ctx, statsScanLimit, func(ds []*statemachine.Digest) error {
		for _, d := range ds {
			st.Counted++
			st.ByStatus[string(d.Status)]++
			st.ByState[d.State]++
			st.ByVersion[strconv.Itoa(d.Version)]++
			st.ByPriority[string(d.Priority)]++
			if b := bucket(d.Created); b >= 0 {
				st.Throughput.Created[b]++
			}
			if b := bucket(d.Updated); b >= 0 && d.Status.Terminal() {
				st.Throughput.Finished[b]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if st.Total, err = s.store.IndexSize(ctx); err != nil {
		return nil, err
	}
	st.Complete = st.Total <= statsScanLimit
	if st.DeadLetters, err = s.store.DeadLetters(ctx); err != nil {
		return nil, err
	}
	return st, nil
}
