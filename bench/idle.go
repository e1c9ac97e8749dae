package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/orderflow/orderflow/orders"
)

// IdleResult is the idle-latency measurement.
type IdleResult struct {
	Wake     bool
	Samples  int
	P50, P99 time.Duration
	// CommandsPerSecond is Redis's load with one idle worker and the API.
	CommandsPerSecond float64
}

// idle runs orders one at a time through the API and one worker, each timed
// from the POST to the answer of a GET ?wait= that returns when the order is
// finished, then measures Redis's load while nothing happens.
func (h *harness) idle(ctx context.Context, wake bool) (IdleResult, error) {
	if err := h.flush(ctx); err != nil {
		return IdleResult{}, err
	}
	// Polling only, asynq polls every 100ms; with the wake path, the
	// worker's default applies (200ms: the poll is only the fallback).
	var poll time.Duration
	if !wake {
		poll = 100 * time.Millisecond
	}
	workers, err := h.startWorkers(1, WorkerOptions{Mode: ModeOrderflow, Concurrency: h.cfg.Concurrency,
		TaskCheckInterval: poll, Wake: wake})
	if err != nil {
		return IdleResult{}, err
	}
	defer stopAll(workers)
	api, url, err := h.startAPI(ctx)
	if err != nil {
		return IdleResult{}, err
	}
	defer api.Stop()
	client := &http.Client{Timeout: 30 * time.Second}
	// Let the worker settle (its first polls, its queues) before timing.
	time.Sleep(500 * time.Millisecond)

	var lat []time.Duration
	for i := range h.cfg.IdleSamples {
		id := fmt.Sprintf("idle-%t-%d", wake, i)
		d, err := postAndWait(ctx, client, url, id)
		if err != nil {
			return IdleResult{}, err
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	// Let the late asynq tasks of those orders drain, then measure idleness.
	time.Sleep(h.cfg.Settle)
	if err := resetStats(ctx, h.rdb); err != nil {
		return IdleResult{}, err
	}
	time.Sleep(h.cfg.IdleWindow)
	stats, err := readCommandStats(ctx, h.rdb)
	if err != nil {
		return IdleResult{}, err
	}
	r := IdleResult{Wake: wake, Samples: len(lat), P50: percentile(lat, 50), P99: percentile(lat, 99),
		CommandsPerSecond: float64(stats.total()) / h.cfg.IdleWindow.Seconds()}
	h.logf("  p50 %s, p99 %s, idle Redis load %.0f commands/s", r.P50, r.P99, r.CommandsPerSecond)
	return r, nil
}

// postAndWait places one order and waits for it to finish, with no polling.
func postAndWait(ctx context.Context, client *http.Client, url, id string) (time.Duration, error) {
	body, _ := json.Marshal(orders.Request{OrderID: id, CustomerID: benchInput.CustomerID, Currency: benchInput.Currency, Items: benchInput.Items})
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/orders", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("POST %s: %d", id, res.StatusCode)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/orders/"+id+"?wait=10s", nil)
	res, err = client.Do(req)
	if err != nil {
		return 0, err
	}
	var o orders.Resource
	err = json.NewDecoder(res.Body).Decode(&o)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if o.Status != "completed" {
		return 0, fmt.Errorf("order %s is %s after waiting", id, o.Status)
	}
	return d, nil
}
