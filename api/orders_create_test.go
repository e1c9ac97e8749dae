package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		before := time.Now().Add(-time.Second)
		res := b.post(orderBody(withID("order-12345"), withItems(item("SKU-ABC", 2, 2499), item("SKU-XYZ", 3, 100))))
		require.Equal(t, http.StatusAccepted, res.Code, "body: %s", res.Body)
		require.Equal(t, "/v1/orders/order-12345", res.Header.Get("Location"))
		require.Empty(t, res.Header.Get(api.HeaderReplayed))

		// Every field of API.md's order resource is present.
		var raw map[string]any
		require.NoError(t, json.Unmarshal(res.Body, &raw))
		for _, f := range []string{
			"order_id", "customer_id", "currency", "amount_cents", "items", "status", "state",
			"workflow_version", "created_at", "updated_at", "reservation_id", "transaction_id",
			"tracking_number", "refund_id", "attempts", "last_error",
		} {
			require.Contains(t, raw, f, "resource %s", res.Body)
		}

		o := decode[orders.Resource](t, res, http.StatusAccepted)
		require.Equal(t, "order-12345", o.OrderID)
		require.Equal(t, "cust-42", o.CustomerID)
		require.Equal(t, "USD", o.Currency)
		require.EqualValues(t, 2*2499+3*100, o.AmountCents)
		require.Equal(t, []orders.Item{{SKU: "SKU-ABC", Qty: 2, UnitPriceCents: 2499}, {SKU: "SKU-XYZ", Qty: 3, UnitPriceCents: 100}}, o.Items)
		require.Equal(t, map[string]string{"channel": "web"}, o.Metadata)
		require.Equal(t, "running", o.Status)
		require.Equal(t, statemachine.OrderPending, o.State)
		require.Equal(t, 1, o.WorkflowVersion)
		require.WithinRange(t, o.CreatedAt, before, time.Now().Add(time.Second))
		require.False(t, o.UpdatedAt.Before(o.CreatedAt))
		require.Empty(t, o.ReservationID+o.TransactionID+o.TrackingNumber+o.RefundID+o.LastError)
		require.Empty(t, o.Attempts)

		got := b.order("order-12345")
		got.UpdatedAt = o.UpdatedAt // TestCreateResponseMatchesGet
		require.Equal(t, o, got, "GET returns what POST returned")
	})
}

// The 202 body is the resource as stored: a GET right after it (nothing has
// run) shows the same resource.
func TestCreateResponseMatchesGet(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	o := b.create(orderBody(withID("same-as-get")))
	got := b.order("same-as-get")
	require.Equal(t, o.UpdatedAt, got.UpdatedAt, "updated_at of the 202 body and of GET")
}

func TestCreateOrderGeneratesID(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	seen := map[string]bool{}
	for range 5 {
		res := b.post(orderBody())
		o := decode[orders.Resource](t, res, http.StatusAccepted)
		require.Regexp(t, idPattern, o.OrderID)
		require.Equal(t, "/v1/orders/"+o.OrderID, res.Header.Get("Location"))
		require.False(t, seen[o.OrderID], "IDs are unique")
		seen[o.OrderID] = true
	}
	require.Len(t, b.list("").Orders, 5)
}

func TestCreateOrderReplayByOrderID(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		first := b.create(orderBody(withID("order-1")))

		// Same content, keys in another order and other white space: a replay.
		res := b.post(`{ "items":[{"unit_price_cents":2499,"qty":2,"sku":"SKU-ABC"}],
			"metadata":{"channel":"web"}, "currency":"USD", "customer_id":"cust-42", "order_id":"order-1" }`)
		require.Equal(t, "true", res.Header.Get(api.HeaderReplayed))
		require.Equal(t, "/v1/orders/order-1", res.Header.Get("Location"))
		replay := decode[orders.Resource](t, res, http.StatusAccepted)
		require.Equal(t, first.OrderID, replay.OrderID)
		require.Equal(t, first.CreatedAt, replay.CreatedAt)

		// Same order_id, different content: a conflict.
		res = b.post(orderBody(withID("order-1"), with("customer_id", "cust-43")))
		requireProblem(t, res, http.StatusConflict)

		require.Equal(t, []string{"order-1"}, b.listIDs(""))
		o := b.order("order-1")
		require.Equal(t, "cust-42", o.CustomerID, "the conflicting request changed nothing")
	})
}

func TestCreateOrderIdempotencyKey(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		var created []string
		for _, tc := range []struct {
			name, key string
			body      map[string]any
		}{
			{"with order_id", "key-with-id", orderBody(withID("keyed-1"))},
			{"without order_id", "key-without-id", orderBody(with("customer_id", "cust-keyed"))},
		} {
			first := b.create(tc.body, api.HeaderIdempotencyKey, tc.key)
			created = append(created, first.OrderID)
			res := b.post(tc.body, api.HeaderIdempotencyKey, tc.key)
			require.Equal(t, "true", res.Header.Get(api.HeaderReplayed), tc.name)
			require.Equal(t, "/v1/orders/"+first.OrderID, res.Header.Get("Location"), tc.name)
			replay := decode[orders.Resource](t, res, http.StatusAccepted)
			require.Equal(t, first.OrderID, replay.OrderID, tc.name)

			// The same key with another body.
			res = b.post(orderBody(with("customer_id", "someone-else")), api.HeaderIdempotencyKey, tc.key)
			requireProblem(t, res, http.StatusUnprocessableEntity)
		}
		require.Equal(t, "keyed-1", created[0])
		require.ElementsMatch(t, created, b.listIDs(""), "no replay and no reused key created an order")
	})
}

// Concurrent requests with one key converge on one order: one creates it,
// the others are answered as replays of it.
func TestCreateOrderConcurrentIdempotencyKey(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		const n = 20
		body := asJSON(t, orderBody()) // no order_id: each request draws its own
		answers := make([]*response, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				answers[i] = b.post(body, api.HeaderIdempotencyKey, "one-key")
			})
		}
		close(start)
		wg.Wait()
		created := 0
		ids := map[string]bool{}
		for _, res := range answers {
			o := decode[orders.Resource](t, res, http.StatusAccepted)
			ids[o.OrderID] = true
			if res.Header.Get(api.HeaderReplayed) == "" {
				created++
			}
		}
		require.Equal(t, 1, created, "one request created the order, the others replayed it")
		require.Len(t, ids, 1, "every answer names the one order")
		require.Len(t, b.list("").Orders, 1, "one order for one Idempotency-Key")
	})
}

// A keyed request refused after its key was bound (here the order_id is
// taken by another order) keeps its key: its retry is refused the same way,
// and the key cannot be reused for another body.
func TestCreateOrderKeyKeptOnFailure(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("taken")))
		refused := orderBody(withID("taken"), with("currency", "EUR"))
		requireProblem(t, b.post(refused, api.HeaderIdempotencyKey, "retry-key"), http.StatusConflict)
		requireProblem(t, b.post(refused, api.HeaderIdempotencyKey, "retry-key"), http.StatusConflict)
		requireProblem(t, b.post(orderBody(withID("free"), with("currency", "EUR")), api.HeaderIdempotencyKey, "retry-key"),
			http.StatusUnprocessableEntity)
		o := b.create(orderBody(withID("free"), with("currency", "EUR")), api.HeaderIdempotencyKey, "another-key")
		require.Equal(t, "free", o.OrderID)
	})
}

func TestCreateOrderInvalidIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	for name, key := range map[string]string{
		"empty":     "",
		"256 chars": strings.Repeat("k", 256),
		"non-ASCII": "clé-1",
		"control":   "key\x01",
	} {
		p := requireValidation(t, b.post(orderBody(), api.HeaderIdempotencyKey, key), api.HeaderIdempotencyKey)
		require.NotEmpty(t, p.Errors, name)
	}
	b.create(orderBody(), api.HeaderIdempotencyKey, strings.Repeat("k", 255))
	b.create(orderBody(), api.HeaderIdempotencyKey, " !~")
	require.Len(t, b.list("").Orders, 2)
}

func TestCreateOrderValidation(t *testing.T) {
	t.Parallel()
	metadata := map[string]any{}
	for i := range 33 {
		metadata[strings.Repeat("k", i+1)] = "v"
	}
	items := make([]any, 101)
	for i := range items {
		items[i] = item("SKU", 1, 1)
	}
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"missing customer_id", orderBody(func(o map[string]any) { delete(o, "customer_id") }), "customer_id"},
		{"customer_id too long", orderBody(with("customer_id", strings.Repeat("c", 129))), "customer_id"},
		{"lowercase currency", orderBody(with("currency", "usd")), "currency"},
		{"missing currency", orderBody(func(o map[string]any) { delete(o, "currency") }), "currency"},
		{"no items", orderBody(withItems()), "items"},
		{"missing items", orderBody(func(o map[string]any) { delete(o, "items") }), "items"},
		{"101 items", orderBody(withItems(items...)), "items"},
		{"qty 0", orderBody(withItems(item("SKU", 0, 1))), "items[0].qty"},
		{"qty 1001", orderBody(withItems(item("SKU", 1, 1), item("SKU", 1001, 1))), "items[1].qty"},
		{"qty 2.5", orderBody(withItems(item("SKU", 2.5, 1))), "items"},
		{`qty "2"`, orderBody(withItems(item("SKU", "2", 1))), "items"},
		{"unit_price_cents -1", orderBody(withItems(item("SKU", 1, -1))), "items[0].unit_price_cents"},
		{"unit_price_cents 1000000001", orderBody(withItems(item("SKU", 1, 1_000_000_001))), "items[0].unit_price_cents"},
		{"sku too long", orderBody(withItems(item(strings.Repeat("s", 65), 1, 1))), "items[0].sku"},
		{"empty sku", orderBody(withItems(item("", 1, 1))), "items[0].sku"},
		{"order_id with a space", orderBody(withID("order 1")), "order_id"},
		{"order_id too long", orderBody(withID(strings.Repeat("o", 129))), "order_id"},
		{"metadata with 33 pairs", orderBody(with("metadata", metadata)), "metadata"},
		{"metadata value not a string", orderBody(with("metadata", map[string]any{"n": 1})), "metadata"},
		{"amount_cents from the client", orderBody(with("amount_cents", 4998)), "amount_cents"},
		{"unknown field", orderBody(with("coupon", "FREE")), "coupon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupMini(t, api.Deps{})
			requireValidation(t, b.post(tc.body), tc.field)
			requireValidation(t, b.post(tc.body, api.HeaderIdempotencyKey, "k-"+tc.name), tc.field)
			require.Empty(t, b.list("").Orders, "nothing is written on a 400")
		})
	}
}

// Every invalid field is reported, not only the first.
func TestCreateOrderValidationListsEveryField(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	p := requireValidation(t, b.post(orderBody(with("currency", "usd"), with("customer_id", ""), withItems(item("SKU", 0, -1)))), "currency")
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	require.Subset(t, fields, []string{"customer_id", "currency", "items[0].qty", "items[0].unit_price_cents"})
}

func TestCreateOrderMalformedBody(t *testing.T) {
	t.Parallel()
	valid := asJSON(t, orderBody())
	for name, body := range map[string]string{
		"malformed JSON":      `{"customer_id": "c",`,
		"not JSON":            `customer_id=c`,
		"trailing object":     valid + ` {}`,
		"trailing garbage":    valid + ` x`,
		"two objects in one":  valid + valid,
		"JSON array":          `[` + valid + `]`,
		"JSON string":         `"order"`,
		"empty body":          ``,
		"white space only":    " \n ",
		"null":                `null`,
		"number in the items": `{"customer_id":"c","currency":"USD","items":[1]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupMini(t, api.Deps{})
			requireProblem(t, b.post(body), http.StatusBadRequest)
			require.Empty(t, b.list("").Orders, "nothing is written on a 400")
		})
	}
}

// Trailing white space after the object is not trailing data.
func TestCreateOrderTrailingWhiteSpace(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	b.create(asJSON(t, orderBody()) + " \n\t")
}

func TestCreateOrderMediaType(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	body := asJSON(t, orderBody())
	for name, headers := range map[string][]string{
		"text/plain":           {"Content-Type", "text/plain"},
		"form":                 {"Content-Type", "application/x-www-form-urlencoded"},
		"missing Content-Type": nil,
		"garbage Content-Type": {"Content-Type", ";;"},
	} {
		res := b.do(http.MethodPost, "/v1/orders", body, headers...)
		p := requireProblem(t, res, http.StatusUnsupportedMediaType)
		require.NotEmpty(t, p.Type, name)
	}
	require.Empty(t, b.list("").Orders)

	res := b.do(http.MethodPost, "/v1/orders", body, "Content-Type", "application/json; charset=utf-8")
	require.Equal(t, http.StatusAccepted, res.Code, "body: %s", res.Body)
}

func TestCreateOrderBodyTooLarge(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	huge := orderBody(with("customer_id", strings.Repeat("c", api.MaxBodyBytes)))
	requireProblem(t, b.post(huge), http.StatusRequestEntityTooLarge)
	require.Empty(t, b.list("").Orders)

	// A body just under the limit is read (and then validated).
	padded := asJSON(t, orderBody()) + strings.Repeat(" ", api.MaxBodyBytes-len(asJSON(t, orderBody())))
	require.Len(t, padded, api.MaxBodyBytes)
	requireProblem(t, b.post(padded+" "), http.StatusRequestEntityTooLarge)
	b.create(padded)
}
