package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/orderflow/orderflow/orders"
)

// Customers the simulators decline: payment declines, shipping cannot
// deliver. A share of the orders uses them, so failure paths run too. They
// are several, each with about as many orders as any other customer, so
// that the limit of one charge per customer at a time makes no hot spot.
var (
	declinedCustomers      = []string{"chaos-broke-1", "chaos-broke-2", "chaos-broke-3", "chaos-broke-4", "chaos-broke-5"}
	undeliverableCustomers = []string{"chaos-far-1", "chaos-far-2", "chaos-far-3"}
)

// load sends the orders: each with an Idempotency-Key, retried through
// outages; a share by the key alone, without an order_id (the server
// picks the ID, and every retry must converge on it); some sent again (by
// key, or by order_id alone); some cancelled while they run.
type load struct {
	s    *system
	cfg  Config
	http *http.Client
	rand *rand.Rand

	mu         sync.Mutex
	ok         map[string]bool
	submitted  int
	duplicates int
	cancels    int
	refused    int
	keyOnly    int
	// dupOrders counts key-only retries answered with another order than
	// the first answer named: a second order made under one key.
	dupOrders int
}

func newLoad(s *system, cfg Config) *load {
	return &load{s: s, cfg: cfg, ok: map[string]bool{}, rand: rand.New(rand.NewPCG(7, 11)),
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
}

func (l *load) run(ctx context.Context) {
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				l.order(ctx, i)
			}
		})
	}
	interval := l.cfg.Duration / time.Duration(l.cfg.Orders)
	t := time.NewTicker(max(interval, time.Microsecond))
	defer t.Stop()
	for i := range l.cfg.Orders {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
		ids <- i
	}
	close(ids)
	wg.Wait()
}

// dice returns a float in [0,1) under the lock (rand.Rand is not safe for
// concurrent use).
func (l *load) dice() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rand.Float64()
}

func (l *load) order(ctx context.Context, i int) {
	name := fmt.Sprintf("chaos-%d", i)
	customer := fmt.Sprintf("cust-%d", i%97)
	switch d := l.dice(); {
	case d < 0.05:
		customer = declinedCustomers[i%len(declinedCustomers)]
	case d < 0.08:
		customer = undeliverableCustomers[i%len(undeliverableCustomers)]
	}
	req := orders.Request{OrderID: name, CustomerID: customer, Currency: "USD",
		Items: []orders.Item{{SKU: fmt.Sprintf("SKU-%d", i%13), Qty: int64(1 + i%3), UnitPriceCents: int64(100 + i%900)}}}
	keyOnly := l.dice() < 0.2
	if keyOnly {
		// The server picks the ID; the key alone makes retries safe.
		req.OrderID = ""
		l.count(&l.keyOnly)
	}
	key := "chaos-key-" + name
	id, ok := l.post(ctx, req, key, true)
	if !ok {
		l.mu.Lock()
		l.refused++
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	l.ok[id] = true
	l.mu.Unlock()
	switch d := l.dice(); {
	case d < 0.10:
		// The client did not see the answer and sends the same request.
		l.count(&l.duplicates)
		if again, ok := l.post(ctx, req, key, false); ok && again != id {
			l.count(&l.dupOrders)
		}
	case d < 0.15 && !keyOnly:
		// Another client sends the same order without a key.
		l.count(&l.duplicates)
		l.post(ctx, req, "", false)
	}
	if l.dice() < 0.10 {
		time.Sleep(time.Duration(l.dice() * float64(300*time.Millisecond)))
		l.count(&l.cancels)
		l.send(ctx, http.MethodPost, "/v1/orders/"+id+"/cancel", nil, "")
	}
}

func (l *load) count(n *int) {
	l.mu.Lock()
	*n++
	l.mu.Unlock()
}

// post sends the order until it is accepted, retrying 5xx, 409 and
// connection errors for up to 45s, as a client should. It returns the
// accepted order's ID (the server's choice for a key-only order) and
// whether it was accepted.
func (l *load) post(ctx context.Context, req orders.Request, key string, retry bool) (string, bool) {
	body, _ := json.Marshal(req)
	deadline := time.Now().Add(45 * time.Second)
	for {
		l.count(&l.submitted)
		status, answer := l.sendRead(ctx, http.MethodPost, "/v1/orders", body, key)
		switch {
		case status == http.StatusAccepted:
			var o struct {
				OrderID string `json:"order_id"`
			}
			if json.Unmarshal(answer, &o) != nil || o.OrderID == "" {
				return "", false
			}
			return o.OrderID, true
		case !retry || time.Now().After(deadline) || ctx.Err() != nil:
			return "", false
		case status == 0 || status >= 500 || status == http.StatusConflict || status == http.StatusTooManyRequests:
			time.Sleep(200 * time.Millisecond)
		default:
			return "", false
		}
	}
}

func (l *load) send(ctx context.Context, method, path string, body []byte, key string) int {
	status, _ := l.sendRead(ctx, method, path, body, key)
	return status
}

// sendRead sends one request and returns its status (0 when no answer came)
// and body.
func (l *load) sendRead(ctx context.Context, method, path string, body []byte, key string) (int, []byte) {
	r, err := http.NewRequestWithContext(ctx, method, l.s.apiURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	res, err := l.http.Do(r)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, nil
	}
	return res.StatusCode, answer
}

func (l *load) accepted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.ok))
	for id := range l.ok {
		out = append(out, id)
	}
	return out
}

func (l *load) fill(r *Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Distinct, r.Accepted, r.Refused = l.cfg.Orders, len(l.ok), l.refused
	r.Submitted, r.Duplicates, r.Cancels = l.submitted, l.duplicates, l.cancels
	r.KeyOnly, r.DuplicateOrders = l.keyOnly, l.dupOrders
}
