package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/orders"
)

// APIResult is the POST /v1/orders load measurement.
type APIResult struct {
	Connections int
	Duration    time.Duration
	Requests    int
	PerSecond   float64
	P50, P99    time.Duration
	Errors      int
}

// apiLoad sends POST /v1/orders (each a new order) over keep-alive
// connections for the configured duration, with no worker running.
func (h *harness) apiLoad(ctx context.Context) (APIResult, error) {
	if err := h.flush(ctx); err != nil {
		return APIResult{}, err
	}
	api, url, err := h.startAPI(ctx)
	if err != nil {
		return APIResult{}, err
	}
	defer api.Stop()
	conns := h.cfg.APIConnections
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
	}
	var (
		next   atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		lat    []time.Duration
		wg     sync.WaitGroup
		header = http.Header{"Content-Type": {"application/json"}}
	)
	deadline := time.Now().Add(h.cfg.APIDuration)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				id := fmt.Sprintf("api-%d", next.Add(1))
				body, _ := json.Marshal(orders.Request{OrderID: id, CustomerID: benchInput.CustomerID, Currency: benchInput.Currency, Items: benchInput.Items})
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/orders", bytes.NewReader(body))
				req.Header = header.Clone()
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusAccepted {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := APIResult{Connections: conns, Duration: elapsed, Requests: len(lat), PerSecond: float64(len(lat)) / elapsed.Seconds(),
		P50: percentile(lat, 50), P99: percentile(lat, 99), Errors: int(errs.Load())}
	h.logf("  %.0f POST/s, p50 %s, p99 %s, %d errors", r.PerSecond, r.P50, r.P99, r.Errors)
	return r, nil
}
