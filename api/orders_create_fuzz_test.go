package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// FuzzCreateOrder drives POST /v1/orders through the real handler, over one
// miniredis for the whole target, with a fuzzed body, Content-Type and
// Idempotency-Key (sent only when sendKey is set).
//
// Properties: no 5xx and no panic; every error is application/problem+json
// whose type, title, status and detail match the answer; a 400 writes nothing
// to Redis; a 202 carries a valid order resource whose amount_cents is
// sum(qty*unit_price_cents) of the body sent, and the order exists.
func FuzzCreateOrder(f *testing.F) {
	const valid = `{"order_id":"order-12345","customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}],"metadata":{"channel":"web"}}`
	const ct = "application/json"
	f.Add([]byte(valid), ct, "", false)
	f.Add([]byte(valid), ct, "key-1", true)
	f.Add([]byte(`{"customer_id":"c","currency":"EUR","items":[{"sku":"A","qty":1000,"unit_price_cents":1000000000}]}`), "application/json; charset=utf-8", "key-1", true)
	f.Add([]byte(`{"customer_id":"c","currency":"EUR","items":[{"sku":"A","qty":1,"unit_price_cents":0},{"sku":"A","qty":3,"unit_price_cents":7}]}`), "application/vnd.order+json", "", false)
	f.Add([]byte(`{"order_id":"order-12345","customer_id":"other","currency":"USD","items":[{"sku":"B","qty":1,"unit_price_cents":1}]}`), ct, "", false)
	f.Add([]byte(`{"customer_id":"c","currency":"USD","items":[{"sku":"A","qty":1,"unit_price_cents":1}],"extra":true}`), ct, "", false)
	f.Add([]byte(`{"customer_id":"c","currency":"USD","items":[{"sku":"A","qty":"1","unit_price_cents":1}]}`), ct, "k", true)
	f.Add([]byte(`{"customer_id":"c","currency":"USD","items":[{"sku":"A","qty":1,"unit_price_cents":1}]} {}`), ct, "", false)
	f.Add([]byte(`[1,2]`), ct, "", false)
	f.Add([]byte(``), ct, "", false)
	f.Add([]byte(`{"customer_id":"c"}`), "text/plain", "", false)
	f.Add([]byte(`{"customer_id":"c"}`), "application/json; charset", "", false)
	f.Add([]byte(valid), ct, "bad\x7fkey", true)
	f.Add([]byte(valid), ct, strings.Repeat("k", 256), true)

	r := redistest.New(f, redistest.BackendMiniredis)
	client := r.Client(f)
	log := slog.New(slog.DiscardHandler)
	store := statemachine.NewStore(client, statemachine.StoreConfig{})
	f.Cleanup(store.Close)
	eng, err := engine.New(engine.Config{Logger: log}, store, statemachine.NewOrderRegistry(), nil,
		tasks.NewQueue(client, tasks.QueueConfig{}), nil)
	require.NoError(f, err)
	srv := api.New(api.Config{Logger: log}, api.Deps{Engine: eng})
	f.Cleanup(srv.Close)
	def, err := statemachine.NewOrderRegistry().Default(statemachine.OrderWorkflow)
	require.NoError(f, err)
	execs := 0

	f.Fuzz(func(t *testing.T, body []byte, contentType, key string, sendKey bool) {
		if execs++; execs%2000 == 0 {
			r.Mini.FlushAll() // keep the shared Redis small; replays then start afresh
		}
		ctx := context.Background()
		var sent fuzzOrderBody
		_ = json.Unmarshal(body, &sent)
		recordKey := statemachine.RecordKey(sent.OrderID)
		idemKey := statemachine.IdempotencyKey(statemachine.HashScopedIdempotencyKey("", key))
		sizeBefore := client.DBSize(ctx).Val()
		orderBefore, idemBefore := r.Mini.Exists(recordKey), r.Mini.Exists(idemKey)

		req := httptest.NewRequest(http.MethodPost, "/v1/orders", bytes.NewReader(body))
		req.Header["Content-Type"] = []string{contentType}
		if sendKey {
			req.Header[api.HeaderIdempotencyKey] = []string{key}
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		code := rec.Code

		require.Less(t, code, 500, "5xx answer: %s", rec.Body)
		if code/100 != 2 {
			fuzzRequireProblem(t, rec, code)
		}
		switch code {
		case http.StatusBadRequest:
			require.Equal(t, sizeBefore, client.DBSize(ctx).Val(), "a 400 wrote keys")
			require.Equal(t, orderBefore, r.Mini.Exists(recordKey), "a 400 created the order")
			require.Equal(t, idemBefore, r.Mini.Exists(idemKey), "a 400 bound the Idempotency-Key")
		case http.StatusAccepted:
			var res orders.Resource
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res), "resource %s", rec.Body)
			require.True(t, orders.ValidID(res.OrderID), "order_id %q", res.OrderID)
			if sent.OrderID != "" {
				require.Equal(t, sent.OrderID, res.OrderID)
			}
			require.Equal(t, "/v1/orders/"+res.OrderID, rec.Header().Get("Location"))
			require.Equal(t, sent.CustomerID, res.CustomerID)
			require.Equal(t, sent.Currency, res.Currency)
			if len(sent.Metadata) == 0 {
				require.Empty(t, res.Metadata)
			} else {
				require.Equal(t, sent.Metadata, res.Metadata)
			}
			require.Len(t, res.Items, len(sent.Items))
			want := new(big.Int)
			for i, it := range sent.Items {
				qty, price := fuzzExactInt(t, it.Qty), fuzzExactInt(t, it.UnitPriceCents)
				want.Add(want, new(big.Int).Mul(qty, price))
				require.Equal(t, it.SKU, res.Items[i].SKU)
				require.Equal(t, qty.Int64(), res.Items[i].Qty)
				require.Equal(t, price.Int64(), res.Items[i].UnitPriceCents)
			}
			require.True(t, want.IsInt64())
			require.Equal(t, want.Int64(), res.AmountCents, "amount_cents is sum(qty*unit_price_cents)")
			require.True(t, statemachine.Status(res.Status).Valid(), "status %q", res.Status)
			_, ok := def.State(res.State)
			require.True(t, ok, "state %q", res.State)
			require.Equal(t, def.Version, res.WorkflowVersion)
			in, err := store.Load(ctx, res.OrderID)
			require.NoError(t, err, "the accepted order exists")
			require.Equal(t, res.State, in.State)
		default:
			require.Contains(t, []int{
				http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
				http.StatusUnprocessableEntity,
			}, code, "unexpected status; body %s", rec.Body)
		}
	})
}

// fuzzOrderBody is what the client sent, numbers kept as written. It is
// read with encoding/json like the handler reads it (same treatment of
// duplicate and differently cased keys); it matters only for 202s.
type fuzzOrderBody struct {
	OrderID    string            `json:"order_id"`
	CustomerID string            `json:"customer_id"`
	Currency   string            `json:"currency"`
	Metadata   map[string]string `json:"metadata"`
	Items      []struct {
		SKU            string      `json:"sku"`
		Qty            json.Number `json:"qty"`
		UnitPriceCents json.Number `json:"unit_price_cents"`
	} `json:"items"`
}

// fuzzExactInt parses a JSON number that the handler accepted as an integer.
func fuzzExactInt(t *testing.T, n json.Number) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(string(n), 10)
	require.True(t, ok, "number %q", n)
	return v
}

// fuzzRequireProblem checks an RFC 9457 answer that matches the status.
func fuzzRequireProblem(t *testing.T, rec *httptest.ResponseRecorder, code int) {
	t.Helper()
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), "body %s", rec.Body)
	var p struct {
		Type   string              `json:"type"`
		Title  string              `json:"title"`
		Status int                 `json:"status"`
		Detail string              `json:"detail"`
		Errors []orders.FieldError `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), "problem %s", rec.Body)
	require.True(t, strings.HasPrefix(p.Type, api.ProblemType("")) && len(p.Type) > len(api.ProblemType("")), "type %q", p.Type)
	require.NotEmpty(t, p.Title)
	require.Equal(t, code, p.Status, "problem %s", rec.Body)
	require.NotEmpty(t, p.Detail)
	if p.Type == api.ProblemType("validation") {
		require.Equal(t, http.StatusBadRequest, code)
		require.NotEmpty(t, p.Errors, "a validation problem lists its fields")
		for _, fe := range p.Errors {
			require.NotEmpty(t, fe.Field)
			require.NotEmpty(t, fe.Message)
		}
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		require.NotEmpty(t, rec.Header().Get("Retry-After"))
	}
}
