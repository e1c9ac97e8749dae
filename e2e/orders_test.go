package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

const settle = 15 * time.Second

func TestHappyPath(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, withCluster, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{})
		created := b.post(t, order("happy-1", "cust-42"))
		require.Equal(t, "running", created.Status)
		require.Equal(t, "pending", created.State)
		require.EqualValues(t, 4998, created.AmountCents)

		o := b.waitState(t, "happy-1", settle, statemachine.OrderCompleted)
		require.Equal(t, "completed", o.Status)
		require.NotEmpty(t, o.ReservationID)
		require.NotEmpty(t, o.TransactionID)
		require.NotEmpty(t, o.TrackingNumber)
		require.Empty(t, o.RefundID)
		require.Equal(t, map[string]int{"reserve": 1, "charge": 1, "ship": 1}, o.Attempts)
		b.requireEffects(t, "happy-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})

		var path []string
		for i, ev := range b.history(t, "happy-1") {
			require.Equal(t, i+1, ev.Seq)
			if ev.Type == statemachine.EventTransition {
				path = append(path, ev.To)
			}
		}
		require.Equal(t, []string{"reserving", "charging", "shipping", "completed"}, path)
	})
}

func TestDeclineReleasesStock(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, withCluster, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			InitialStock: 10,
			Payment:      providers.Faults{DeclineCustomers: []string{"broke"}},
		}})
		b.post(t, order("decline-1", "broke"))
		o := b.waitState(t, "decline-1", settle, statemachine.OrderFailed)
		require.Equal(t, "failed", o.Status)
		require.Contains(t, o.LastError, "card_declined")
		require.Empty(t, o.TransactionID)
		require.Equal(t, 1, o.Attempts["charge"], "a decline is permanent: no retry")
		b.requireEffects(t, "decline-1", map[string]int{"reserve": 1, "release": 1})
		avail, limited, err := b.ledger.Stock(context.Background(), "SKU-ABC")
		require.NoError(t, err)
		require.True(t, limited)
		require.Equal(t, 10, avail, "the stock must be back")
	})
}

func TestOutOfStockFailsWithoutEffects(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{InitialStock: 1}})
		b.post(t, order("oos-1", "cust-1")) // wants 2, only 1 in stock
		o := b.waitState(t, "oos-1", settle, statemachine.OrderFailed)
		require.Contains(t, o.LastError, "out_of_stock")
		b.requireEffects(t, "oos-1", map[string]int{})
	})
}

func TestShippingFailureRefundsAndReleases(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			InitialStock: 10,
			Shipping:     providers.Faults{DeclineCustomers: []string{"far-away"}},
		}})
		b.post(t, order("ship-fail-1", "far-away"))
		o := b.waitState(t, "ship-fail-1", settle, statemachine.OrderFailed)
		require.NotEmpty(t, o.RefundID)
		require.Contains(t, o.LastError, "undeliverable")
		b.requireEffects(t, "ship-fail-1", map[string]int{"reserve": 1, "charge": 1, "refund": 1, "release": 1})
		avail, _, err := b.ledger.Stock(context.Background(), "SKU-ABC")
		require.NoError(t, err)
		require.Equal(t, 10, avail)
	})
}

func TestTimeoutAfterChargeLeavesOneCharge(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{
			timeout: 300 * time.Millisecond,
			sim:     providers.SimConfig{Payment: providers.Faults{TimeoutRate: 1, TimeoutHold: 5 * time.Second}},
		})
		b.post(t, order("timeout-1", "cust-1"))
		// The charge is applied but its answer is lost, attempt after attempt.
		waitFor(t, settle, "the charge to be applied", func() bool { return b.effects(t, "timeout-1")["charge"] == 1 })
		waitFor(t, settle, "a retried charge", func() bool { return b.get(t, "timeout-1").Attempts["charge"] >= 2 })
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{}))

		o := b.waitState(t, "timeout-1", settle, statemachine.OrderCompleted)
		b.requireEffects(t, "timeout-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})
		entries, err := b.ledger.ForOrder(context.Background(), "timeout-1")
		require.NoError(t, err)
		for _, e := range entries {
			if e.Op == providers.OpCharge {
				require.Equal(t, e.ID, o.TransactionID, "the retry must get the first charge's answer")
			}
		}
	})
}

func TestExhaustedChargeIsSettledThenCompensated(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{
			timeout: 200 * time.Millisecond,
			sim:     providers.SimConfig{Payment: providers.Faults{TimeoutRate: 1, TimeoutHold: 5 * time.Second}},
		})
		b.post(t, order("exhaust-1", "cust-1"))
		// Every charge attempt times out after the charge was applied; once
		// attempts run out, the refund step must settle the charge (learn its
		// transaction) and refund it.
		b.waitState(t, "exhaust-1", settle, statemachine.OrderRefunding, statemachine.OrderReleasing, statemachine.OrderFailed)
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{}))
		o := b.waitState(t, "exhaust-1", settle, statemachine.OrderFailed)
		require.Equal(t, 6, o.Attempts["charge"])
		require.NotEmpty(t, o.TransactionID, "the settled charge is recorded")
		require.NotEmpty(t, o.RefundID)
		b.requireEffects(t, "exhaust-1", map[string]int{"reserve": 1, "charge": 1, "refund": 1, "release": 1})
	})
}

func TestRetriedFailuresThenSuccess(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, withCluster, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			Inventory: providers.Faults{RateLimitRate: 1, RetryAfter: time.Second},
			Shipping:  providers.Faults{FailureRate: 1},
		}})
		b.post(t, order("retry-1", "cust-1"))
		waitFor(t, settle, "a 429 to be recorded", func() bool { return b.get(t, "retry-1").LastError != "" })
		o := b.get(t, "retry-1")
		require.Equal(t, "reserving", o.State)
		require.Contains(t, o.LastError, "429")
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderInventory, providers.Faults{}))
		waitFor(t, settle, "shipping retries", func() bool { return b.get(t, "retry-1").Attempts["ship"] >= 2 })
		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderShipping, providers.Faults{}))
		o = b.waitState(t, "retry-1", settle, statemachine.OrderCompleted)
		require.GreaterOrEqual(t, o.Attempts["ship"], 2)
		b.requireEffects(t, "retry-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})

		var failures int
		for _, ev := range b.history(t, "retry-1") {
			if ev.Type == statemachine.EventStepFailed {
				failures++
				require.NotEmpty(t, ev.Error)
				require.Positive(t, ev.Attempt)
			}
		}
		require.GreaterOrEqual(t, failures, 2)
	})
}

func TestDuplicateDeliveryAppliesOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			Payment: providers.Faults{Latency: 50 * time.Millisecond},
		}})
		b.post(t, order("dup-1", "cust-1"))
		// The same task, delivered again and again under other task IDs, as
		// asynq may after a lease expiry or a crash.
		q := tasks.NewQueue(b.client(), tasks.QueueConfig{})
		for i := range 5 {
			require.NoError(t, q.Enqueue(context.Background(), engine.Task{
				InstanceID: "dup-1", Queue: statemachine.DefaultQueue, TaskID: fmt.Sprintf("dup-%d", i),
			}))
		}
		b.waitState(t, "dup-1", settle, statemachine.OrderCompleted)
		b.requireEffects(t, "dup-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})
		seen := map[string]int{}
		for _, ev := range b.history(t, "dup-1") {
			if ev.Type == statemachine.EventTransition {
				seen[ev.Event]++
			}
		}
		require.Equal(t, map[string]int{"start": 1, "reserved": 1, "charged": 1, "shipped": 1}, seen)
	})
}

func TestConcurrentIdempotentPostsCreateOneOrder(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{})
		body := order("", "cust-1") // the server generates the ID
		var mu sync.Mutex
		ids := map[string]bool{}
		codes := map[int]int{}
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				res := b.do(t, http.MethodPost, "/v1/orders", body, "Idempotency-Key", "same-key-1")
				mu.Lock()
				defer mu.Unlock()
				codes[res.status]++
				if res.status == http.StatusAccepted {
					var o struct {
						OrderID string `json:"order_id"`
					}
					res.json(t, &o)
					ids[o.OrderID] = true
				}
			})
		}
		wg.Wait()
		require.Len(t, ids, 1, "one order for one key; codes %v", codes)
		require.Equal(t, 20, codes[http.StatusAccepted]+codes[http.StatusConflict], "codes %v", codes)
		var id string
		for k := range ids {
			id = k
		}
		b.waitState(t, id, settle, statemachine.OrderCompleted)
		b.requireEffects(t, id, map[string]int{"reserve": 1, "charge": 1, "ship": 1})
		res := b.do(t, http.MethodGet, "/v1/orders", nil)
		var list struct {
			Orders []struct{} `json:"orders"`
		}
		res.json(t, &list)
		require.Len(t, list.Orders, 1)
	})
}

func TestCancelMidChargeCompensates(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, withCluster, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{
			InitialStock: 10,
			Payment:      providers.Faults{Latency: 300 * time.Millisecond},
		}})
		b.post(t, order("cancel-1", "cust-1"))
		b.waitState(t, "cancel-1", settle, statemachine.OrderCharging)
		res := b.do(t, http.MethodPost, "/v1/orders/cancel-1/cancel", nil)
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)

		o := b.waitState(t, "cancel-1", settle, statemachine.OrderCancelled)
		require.Equal(t, "cancelled", o.Status)
		b.requireEffects(t, "cancel-1", map[string]int{"reserve": 1, "charge": 1, "refund": 1, "release": 1})
		avail, _, err := b.ledger.Stock(context.Background(), "SKU-ABC")
		require.NoError(t, err)
		require.Equal(t, 10, avail)

		again := b.do(t, http.MethodPost, "/v1/orders/cancel-1/cancel", nil)
		require.Equal(t, http.StatusAccepted, again.status)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	})
}

func TestCancelPendingAndPastPointOfNoReturn(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true, sim: providers.SimConfig{
			Shipping: providers.Faults{Latency: time.Second},
		}})
		// Without a worker the order stays pending: a cancel ends it at once.
		b.post(t, order("cancel-pending", "cust-1"))
		res := b.do(t, http.MethodPost, "/v1/orders/cancel-pending/cancel", nil)
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		require.Equal(t, "cancelled", b.get(t, "cancel-pending").Status)

		b.startWorker(t, options{})
		b.waitState(t, "cancel-pending", settle, statemachine.OrderCancelled)
		b.requireEffects(t, "cancel-pending", map[string]int{})

		b.post(t, order("cancel-late", "cust-1"))
		b.waitState(t, "cancel-late", settle, statemachine.OrderShipping)
		res = b.do(t, http.MethodPost, "/v1/orders/cancel-late/cancel", nil)
		require.Equal(t, http.StatusConflict, res.status, "body: %s", res.body)
		require.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
		b.waitState(t, "cancel-late", settle, statemachine.OrderCompleted)
		res = b.do(t, http.MethodPost, "/v1/orders/cancel-late/cancel", nil)
		require.Equal(t, http.StatusConflict, res.status)
	})
}

// A shipment cannot be recalled, so a shipping provider that keeps failing
// is retried, not given up on: refunding an order whose goods may have left
// would be worse than waiting.
func TestShippingOutageIsRetriedNotRefunded(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{sim: providers.SimConfig{Shipping: providers.Faults{FailureRate: 1}}})
		b.post(t, order("ship-outage-1", "cust-1"))
		waitFor(t, settle, "more shipping attempts than any step may fail", func() bool {
			return b.get(t, "ship-outage-1").Attempts["ship"] > 8
		})
		o := b.get(t, "ship-outage-1")
		require.Equal(t, statemachine.OrderShipping, o.State)
		b.requireEffects(t, "ship-outage-1", map[string]int{"reserve": 1, "charge": 1})

		require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderShipping, providers.Faults{}))
		b.waitState(t, "ship-outage-1", settle, statemachine.OrderCompleted)
		b.requireEffects(t, "ship-outage-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})
	})
}
