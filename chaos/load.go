package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
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
	// Workflow v2: the risk agent sends some customers to a human's
	// review and rejects others; the reviews are approved, rejected, or
	// left to time out.
	reviewCustomers = []string{"chaos-review-1", "chaos-review-2", "chaos-review-3"}
	rejectCustomers = []string{"chaos-risky-1"}
	// chaosWarehouses are v2's warehouses; the first is out of stock.
	chaosWarehouses = []string{"wh-empty", "wh-east", "wh-west"}
)

// reviewTimeout is the chaos workers' review deadline.
const reviewTimeout = 3 * time.Second

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
	// v2 counts orders sent to the v2 API; approved, rejected and
	// timedOut the reviews decided each way; paused the orders paused
	// and resumed.
	v2, approved, rejected, timedOut, paused int
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
	if l.cfg.Reshards > 0 && i%10 == 0 {
		// A tenth of the orders live in the slots the reshards move:
		// slot 0, then 1, ... (the first master's lowest at the time).
		name = slotOrderID(name, (i/10)%l.cfg.Reshards)
	}
	customer := fmt.Sprintf("cust-%d", i%97)
	isV2 := i%2 == 1
	switch d := l.dice(); {
	case d < 0.05:
		customer = declinedCustomers[i%len(declinedCustomers)]
	case d < 0.08:
		customer = undeliverableCustomers[i%len(undeliverableCustomers)]
	case isV2 && d < 0.20:
		customer = reviewCustomers[i%len(reviewCustomers)]
	case isV2 && d < 0.23:
		customer = rejectCustomers[0]
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
	base := l.s.apiURL
	if isV2 {
		base = l.s.apiV2URL
		l.count(&l.v2)
	}
	id, ok := l.post(ctx, base, req, key, true)
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
		if again, ok := l.post(ctx, base, req, key, false); ok && again != id {
			l.count(&l.dupOrders)
		}
	case d < 0.15 && !keyOnly:
		// Another client sends the same order without a key.
		l.count(&l.duplicates)
		l.post(ctx, base, req, "", false)
	}
	if isV2 && slices.Contains(reviewCustomers, customer) {
		l.review(ctx, id)
	}
	if l.dice() < 0.05 {
		// An operator pauses it for a moment.
		l.count(&l.paused)
		l.signal(ctx, id, "pause")
		time.Sleep(time.Duration(l.dice() * float64(500*time.Millisecond)))
		l.signal(ctx, id, "resume")
	}
	if l.dice() < 0.10 {
		time.Sleep(time.Duration(l.dice() * float64(300*time.Millisecond)))
		l.count(&l.cancels)
		l.signal(ctx, id, "cancel")
	}
}

// review decides an order waiting for a human: approve, reject, or leave
// it to its deadline.
func (l *load) review(ctx context.Context, id string) {
	// Wait until it is in review (or gone past it), within the deadline.
	deadline := time.Now().Add(reviewTimeout)
	for time.Now().Before(deadline) {
		status, body := l.sendRead(ctx, http.MethodGet, "/v1/orders/"+id, nil, "")
		if status == http.StatusOK && bytes.Contains(body, []byte(`"state":"in_review"`)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch d := l.dice(); {
	case d < 0.4:
		l.count(&l.approved)
		l.signal(ctx, id, "approve")
	case d < 0.7:
		l.count(&l.rejected)
		l.signal(ctx, id, "reject")
	default:
		l.count(&l.timedOut)
	}
}

// signal sends a signal, retried through outages (5xx, 429, no answer) for
// up to 45s, as a client should: a signal is idempotent.
func (l *load) signal(ctx context.Context, id, name string) {
	deadline := time.Now().Add(45 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		status := l.send(ctx, http.MethodPost, "/v1/orders/"+id+"/"+name, nil, "")
		if status != 0 && status < 500 && status != http.StatusTooManyRequests {
			return
		}
		time.Sleep(200 * time.Millisecond)
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
func (l *load) post(ctx context.Context, base string, req orders.Request, key string, retry bool) (string, bool) {
	body, _ := json.Marshal(req)
	deadline := time.Now().Add(45 * time.Second)
	for {
		l.count(&l.submitted)
		status, answer := l.sendTo(ctx, base, http.MethodPost, "/v1/orders", body, key)
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
	return l.sendTo(ctx, l.s.apiURL, method, path, body, key)
}

// sendTo is sendRead to the API at base.
func (l *load) sendTo(ctx context.Context, base, method, path string, body []byte, key string) (int, []byte) {
	r, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
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
	r.V2, r.Approved, r.Rejected, r.TimedOut, r.Paused = l.v2, l.approved, l.rejected, l.timedOut, l.paused
}
