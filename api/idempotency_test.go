package api_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// interruptingQueue is the engine's task queue with a hook on the first
// enqueue, which comes after the API bound the Idempotency-Key and before
// the order is written: the place where a request is cut off.
type interruptingQueue struct {
	engine.Queue
	// interrupt runs on the first enqueue, with the queue's own enqueue;
	// it returns what that enqueue returns.
	interrupt func(ctx context.Context, t engine.Task, enqueue func() error) error

	mu    sync.Mutex
	first string // the order the first enqueue was for
}

// Enqueue implements engine.Queue.
func (q *interruptingQueue) Enqueue(ctx context.Context, t engine.Task) error {
	q.mu.Lock()
	first := q.first == ""
	if first {
		q.first = t.InstanceID
	}
	q.mu.Unlock()
	enqueue := func() error { return q.Queue.Enqueue(ctx, t) }
	if first {
		return q.interrupt(ctx, t, enqueue)
	}
	return enqueue()
}

// firstOrder returns the order the first enqueue was for.
func (q *interruptingQueue) firstOrder() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.first
}

// A key-only POST (no order_id: the server draws one) whose order could not
// be started after its key was bound, however that happened, is retried by
// the client with the same key: the retry creates the order the first
// attempt named, and only that one. No retry is refused as "in flight".
func TestKeyOnlyRetryAfterAFailedStartMakesOneOrder(t *testing.T) {
	t.Parallel()
	for name, interrupt := range map[string]func(r *redistest.Instance) func(context.Context, engine.Task, func() error) error{
		"start fails": func(*redistest.Instance) func(context.Context, engine.Task, func() error) error {
			return func(context.Context, engine.Task, func() error) error { return errors.New("queue unavailable") }
		},
		"redis stops before the task": func(r *redistest.Instance) func(context.Context, engine.Task, func() error) error {
			return func(_ context.Context, _ engine.Task, enqueue func() error) error {
				r.Stop()
				return enqueue()
			}
		},
		"redis stops before the order": func(r *redistest.Instance) func(context.Context, engine.Task, func() error) error {
			return func(_ context.Context, _ engine.Task, enqueue func() error) error {
				err := enqueue()
				r.Stop()
				return err
			}
		},
	} {
		for _, backend := range redistest.Backends {
			t.Run(name+"/"+string(backend), func(t *testing.T) {
				t.Parallel()
				// A restarted redis-server keeps what it acknowledged.
				r := redistest.NewWith(t, backend, redistest.Options{AppendFsyncAlways: true})
				q := &interruptingQueue{interrupt: interrupt(r)}
				b := setupQueue(t, r.Client(t), api.Config{}, api.Deps{}, func(inner engine.Queue) engine.Queue {
					q.Queue = inner
					return q
				})
				body := orderBody(with("customer_id", "cust-retry"))

				res := b.post(body, api.HeaderIdempotencyKey, "lost-reply")
				requireProblem(t, res, http.StatusServiceUnavailable)
				requireRetryAfter(t, res)
				first := q.firstOrder()
				require.NotEmpty(t, first)
				if name != "start fails" {
					r.Start(t)
				}

				// The client retries until it is answered; nothing but
				// Redis coming back is awaited.
				var mu sync.Mutex
				var retry *response
				var codes []int
				require.Eventually(t, func() bool {
					res := b.post(body, api.HeaderIdempotencyKey, "lost-reply")
					mu.Lock()
					defer mu.Unlock()
					retry, codes = res, append(codes, res.Code)
					return res.Code != http.StatusServiceUnavailable
				}, 10*time.Second, 10*time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				require.NotContains(t, codes, http.StatusConflict, "a retry is never refused as in flight")
				o := decode[orders.Resource](t, retry, http.StatusAccepted)
				require.Equal(t, first, o.OrderID, "the retry made the order the first attempt named")
				require.Empty(t, retry.Header.Get(api.HeaderReplayed), "the first attempt made nothing")

				again := b.post(body, api.HeaderIdempotencyKey, "lost-reply")
				require.Equal(t, "true", again.Header.Get(api.HeaderReplayed))
				require.Equal(t, first, decode[orders.Resource](t, again, http.StatusAccepted).OrderID)
				require.Equal(t, []string{first}, b.listIDs(""), "one order")

				in, err := b.store.Load(t.Context(), first)
				require.NoError(t, err)
				require.Equal(t, statemachine.HashScopedIdempotencyKey("", "lost-reply"), in.KeyHash,
					"the order records the key it was created under")
			})
		}
	}
}

// Idempotency-Keys are scoped to the caller: two tokens sending one key
// make two orders, and each token's retry replays its own.
func TestIdempotencyKeysAreScopedToTheToken(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupConfig(t, r.Client(t), api.Config{Tokens: testTokens}, api.Deps{})
		body := orderBody(with("customer_id", "cust-shared"))
		mine := b.create(body, append(bearer(writer), api.HeaderIdempotencyKey, "shared-key")...)
		theirs := b.create(body, append(bearer(both), api.HeaderIdempotencyKey, "shared-key")...)
		require.NotEqual(t, mine.OrderID, theirs.OrderID, "two callers, two requests")

		for tok, want := range map[string]string{writer.Secret: mine.OrderID, both.Secret: theirs.OrderID} {
			res := b.post(body, "Authorization", "Bearer "+tok, api.HeaderIdempotencyKey, "shared-key")
			require.Equal(t, "true", res.Header.Get(api.HeaderReplayed))
			require.Equal(t, want, decode[orders.Resource](t, res, http.StatusAccepted).OrderID)
		}
		// A different body under one token's key is refused; the other
		// token's binding is untouched.
		requireProblem(t, b.post(orderBody(), append(bearer(writer), api.HeaderIdempotencyKey, "shared-key")...),
			http.StatusUnprocessableEntity)

		in, err := b.store.Load(t.Context(), mine.OrderID)
		require.NoError(t, err)
		require.Equal(t, statemachine.HashScopedIdempotencyKey(writer.Name, "shared-key"), in.KeyHash)
		list := decode[listBody](t, b.do(http.MethodGet, "/v1/orders", "", bearer(admin)...), http.StatusOK)
		require.Len(t, list.Orders, 2)
	})
}

// A key stays bound after its order finished: a retry replays the finished
// order, and another body is still refused.
func TestIdempotencyKeyRememberedAfterTheOrderFinished(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		body := orderBody(with("customer_id", "cust-done"))
		first := b.create(body, api.HeaderIdempotencyKey, "finished-key")
		require.Equal(t, statemachine.OrderCompleted, b.drive(first.OrderID, "start", "reserved", "charged", "shipped"))

		res := b.post(body, api.HeaderIdempotencyKey, "finished-key")
		require.Equal(t, "true", res.Header.Get(api.HeaderReplayed))
		o := decode[orders.Resource](t, res, http.StatusAccepted)
		require.Equal(t, first.OrderID, o.OrderID)
		require.Equal(t, "completed", o.Status)
		requireProblem(t, b.post(orderBody(), api.HeaderIdempotencyKey, "finished-key"), http.StatusUnprocessableEntity)
		require.Len(t, b.list("").Orders, 1)
	})
}
