package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// PriorityResult is the priority run: a backlog of orders of the three
// priorities, submitted at once, and how long each priority's orders took
// end to end.
type PriorityResult struct {
	Orders  int
	Latency time.Duration // the providers' latency
	Wall    time.Duration
	// ByPriority holds each priority's latencies, highest first.
	ByPriority []PriorityLatency
}

// PriorityLatency is one priority's end-to-end latencies.
type PriorityLatency struct {
	Priority      statemachine.Priority
	Orders        int
	P50, P99, Max time.Duration
}

// priority submits cfg.PriorityOrders orders at once, a third of each
// priority in turn, to one worker whose providers answer in
// ScalingLatency, and times each order from its submission to its end.
func (h *harness) priority(ctx context.Context) (PriorityResult, error) {
	if err := h.flush(ctx); err != nil {
		return PriorityResult{}, err
	}
	latency := h.cfg.ScalingLatency
	procs, err := h.startWorkers(1, WorkerOptions{Mode: ModeOrderflow, RedisURL: h.redisURL, Concurrency: h.cfg.Concurrency,
		Wake: true, ProviderLatency: latency})
	if err != nil {
		return PriorityResult{}, err
	}
	defer stopAll(procs)
	n := h.cfg.PriorityOrders
	conn, err := server.OpenRedis(h.redisURL, 40)
	if err != nil {
		return PriorityResult{}, err
	}
	defer conn.Close()
	store := statemachine.NewStore(conn.Client, statemachine.StoreConfig{})
	defer store.Close()
	eng, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store,
		statemachine.NewOrderRegistry(), nil, tasks.NewQueue(conn.Client, tasks.QueueConfig{}), nil)
	if err != nil {
		return PriorityResult{}, err
	}
	sub := h.rdb.Subscribe(ctx, DoneChannel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return PriorityResult{}, err
	}
	prio := func(i int) statemachine.Priority { return statemachine.Priorities[i%len(statemachine.Priorities)] }
	var mu sync.Mutex
	started := make(map[string]time.Time, n)
	ended := make(map[string]time.Time, n)
	all := make(chan struct{})
	go func() {
		for m := range sub.Channel(redis.WithChannelSize(n)) {
			now := time.Now()
			mu.Lock()
			ended[m.Payload] = now
			done := len(ended) == n
			mu.Unlock()
			if done {
				close(all)
				return
			}
		}
	}()
	begin := time.Now()
	ids := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range ids {
				id := fmt.Sprintf("prio-%d", i)
				mu.Lock()
				started[id] = time.Now()
				mu.Unlock()
				if _, err := eng.Start(ctx, engine.StartRequest{ID: id, Workflow: statemachine.OrderWorkflow, Input: benchInputJSON(),
					Fingerprint: "bench", Priority: prio(i)}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	select {
	case err := <-errs:
		return PriorityResult{}, fmt.Errorf("submitting: %w", err)
	default:
	}
	select {
	case <-all:
	case <-ctx.Done():
		return PriorityResult{}, ctx.Err()
	case <-time.After(10 * time.Minute):
		return PriorityResult{}, fmt.Errorf("orders did not finish within 10 minutes")
	}
	res := PriorityResult{Orders: n, Latency: latency, Wall: time.Since(begin)}
	mu.Lock()
	defer mu.Unlock()
	for pi, p := range statemachine.Priorities {
		var lat []time.Duration
		for i := pi; i < n; i += len(statemachine.Priorities) {
			id := fmt.Sprintf("prio-%d", i)
			lat = append(lat, ended[id].Sub(started[id]))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		res.ByPriority = append(res.ByPriority, PriorityLatency{Priority: p, Orders: len(lat),
			P50: percentile(lat, 50), P99: percentile(lat, 99), Max: lat[len(lat)-1]})
	}
	h.logf("  %d orders in %s; %s", n, res.Wall.Round(time.Millisecond), res.summary())
	return res, nil
}

func (r PriorityResult) summary() string {
	s := ""
	for _, p := range r.ByPriority {
		s += fmt.Sprintf("%s p50 %s p99 %s max %s; ", p.Priority, ms(p.P50), ms(p.P99), ms(p.Max))
	}
	return s
}

// markdown renders the priority section.
func (r PriorityResult) markdown() string {
	b := fmt.Sprintf("### Priorities under a backlog\n\n%d orders submitted at once, a third each of high, normal and low priority in turn, "+
		"to one worker process of concurrency 20 whose providers answer in %s; each order timed from its submission to its end "+
		"(all done in %s). A worker serves each queue's priority variants with weights 3 : 2 : 1, so higher priorities run first "+
		"and lower ones still progress.\n\n| priority | orders | p50 | p99 | slowest |\n|---|---:|---:|---:|---:|\n",
		r.Orders, r.Latency, r.Wall.Round(time.Millisecond))
	for _, p := range r.ByPriority {
		b += fmt.Sprintf("| %s | %d | %s | %s | %s |\n", p.Priority, p.Orders, ms(p.P50), ms(p.P99), ms(p.Max))
	}
	return b
}

// benchInputJSON is benchInput as JSON.
func benchInputJSON() []byte {
	b, _ := json.Marshal(benchInput)
	return b
}
