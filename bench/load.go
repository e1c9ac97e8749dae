package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// loadResult is what one closed-loop run measured.
type loadResult struct {
	orders    int
	wall      time.Duration
	latencies []time.Duration // sorted
}

func (r loadResult) perSecond() float64 { return float64(r.orders) / r.wall.Seconds() }

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// runLoad submits n orders with at most outstanding in flight at once (a
// closed loop) and waits for each to be announced on DoneChannel. Latency is
// from the start of an order's submission to its announcement.
func runLoad(ctx context.Context, rdb redis.UniversalClient, s submitter, prefix string, n, outstanding int) (loadResult, error) {
	sub := subscribeDone(ctx, rdb)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return loadResult{}, fmt.Errorf("subscribing to %s: %w", DoneChannel, err)
	}
	var (
		mu      sync.Mutex
		started = make(map[string]time.Time, outstanding)
		lat     = make([]time.Duration, 0, n)
		slots   = make(chan struct{}, outstanding)
		errs    = make(chan error, 1)
		alldone = make(chan struct{})
	)
	go func() {
		ch := sub.Channel(redis.WithChannelSize(4096))
		for m := range ch {
			now := time.Now()
			mu.Lock()
			t0, ok := started[m.Payload]
			if ok {
				delete(started, m.Payload)
				lat = append(lat, now.Sub(t0))
			}
			done := len(lat) == n
			mu.Unlock()
			if ok {
				<-slots
			}
			if done {
				close(alldone)
				return
			}
		}
	}()
	begin := time.Now()
	for i := range n {
		select {
		case slots <- struct{}{}:
		case err := <-errs:
			return loadResult{}, err
		case <-ctx.Done():
			return loadResult{}, ctx.Err()
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		mu.Lock()
		started[id] = time.Now()
		mu.Unlock()
		go func() {
			if err := s.submit(ctx, id); err != nil {
				select {
				case errs <- fmt.Errorf("submitting %s: %w", id, err):
				default:
				}
			}
		}()
	}
	select {
	case <-alldone:
	case err := <-errs:
		return loadResult{}, err
	case <-ctx.Done():
		return loadResult{}, ctx.Err()
	case <-time.After(10 * time.Minute):
		return loadResult{}, fmt.Errorf("orders did not finish within 10 minutes")
	}
	wall := time.Since(begin)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return loadResult{orders: n, wall: wall, latencies: lat}, nil
}

// subscribeDone subscribes to DoneChannel: sharded pub/sub on a cluster,
// where the workers SPUBLISH.
func subscribeDone(ctx context.Context, rdb redis.UniversalClient) *redis.PubSub {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return rdb.SSubscribe(ctx, DoneChannel)
	}
	return rdb.Subscribe(ctx, DoneChannel)
}
