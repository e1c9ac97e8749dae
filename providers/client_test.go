package providers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recorded is one request a stub provider received.
type recorded struct {
	method, path, key string
	body              map[string]any
}

// stubBundle is a stub provider answering every call with one canned
// answer, and a client set pointed at it under the prefix /p.
type stubBundle struct {
	set  Set
	reqs chan recorded
}

// stubAnswer is what the stub answers.
type stubAnswer struct {
	status     int
	body       string
	retryAfter string
	// block holds the answer until the request ends.
	block bool
}

func setupStub(t *testing.T, a stubAnswer, timeout time.Duration) *stubBundle {
	t.Helper()
	b := &stubBundle{reqs: make(chan recorded, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{method: r.Method, path: r.URL.EscapedPath(), key: r.Header.Get("Idempotency-Key")}
		data, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(data, &rec.body)
		b.reqs <- rec
		if a.block {
			<-r.Context().Done()
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	b.set = newTestClient(t, srv.URL+"/p", timeout)
	return b
}

func TestHTTPConfig(t *testing.T) {
	t.Parallel()
	good := HTTPConfig{InventoryURL: "http://h/inventory", PaymentURL: "https://h/payment/", ShippingURL: "http://h:81"}
	d := good.WithDefaults()
	require.Equal(t, DefaultHTTPTimeout, d.Timeout)
	require.NotNil(t, d.Client)
	require.NoError(t, d.validate())

	for _, tc := range []struct {
		name   string
		modify func(*HTTPConfig)
		want   string
	}{
		{"missing inventory", func(c *HTTPConfig) { c.InventoryURL = "" }, "HTTPConfig.InventoryURL: required"},
		{"relative payment", func(c *HTTPConfig) { c.PaymentURL = "/payment" }, "HTTPConfig.PaymentURL"},
		{"other scheme", func(c *HTTPConfig) { c.ShippingURL = "ftp://h/shipping" }, "HTTPConfig.ShippingURL"},
		{"query", func(c *HTTPConfig) { c.ShippingURL = "http://h/shipping?x=1" }, "HTTPConfig.ShippingURL"},
		{"negative timeout", func(c *HTTPConfig) { c.Timeout = -time.Second }, "HTTPConfig.Timeout"},
	} {
		cfg := good
		tc.modify(&cfg)
		_, err := NewHTTP(cfg)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
}

func TestHTTPClientSendsContract(t *testing.T) {
	t.Parallel()
	b := setupStub(t, stubAnswer{status: 200, body: `{"reservation_id":"r1","transaction_id":"t1","refund_id":"f1","tracking_number":"n1"}`}, 0)
	ctx := t.Context()
	items := []Item{{SKU: "a", Qty: 2}}

	id, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: items})
	require.NoError(t, err)
	require.Equal(t, "r1", id)
	require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: "r/1"}))
	id, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "c1", AmountCents: 5, Currency: "EUR"})
	require.NoError(t, err)
	require.Equal(t, "t1", id)
	id, err = b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: "t1", AmountCents: 5, Currency: "EUR"})
	require.NoError(t, err)
	require.Equal(t, "f1", id)
	id, err = b.set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1", ReservationID: "r1", Items: items})
	require.NoError(t, err)
	require.Equal(t, "n1", id)

	jsonItems := []any{map[string]any{"sku": "a", "qty": 2.0}}
	for _, want := range []recorded{
		{http.MethodPost, "/p/inventory/reservations", "o1:reserve", map[string]any{"order_id": "o1", "items": jsonItems}},
		{http.MethodPost, "/p/inventory/reservations/r%2F1/release", "o1:release", map[string]any{"order_id": "o1"}},
		{http.MethodPost, "/p/payment/charges", "o1:charge", map[string]any{"order_id": "o1", "customer_id": "c1", "amount_cents": 5.0, "currency": "EUR"}},
		{http.MethodPost, "/p/payment/refunds", "o1:refund", map[string]any{"order_id": "o1", "transaction_id": "t1", "amount_cents": 5.0, "currency": "EUR"}},
		{http.MethodPost, "/p/shipping/shipments", "o1:ship", map[string]any{"order_id": "o1", "reservation_id": "r1", "items": jsonItems}},
	} {
		require.Equal(t, want, <-b.reqs)
	}

	// Releasing no reservation sends nothing.
	require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o2:release", OrderID: "o2"}))
	require.Empty(t, b.reqs)
}

func TestHTTPClientClassifiesAnswers(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name      string
		answer    stubAnswer
		status    int
		code      string
		permanent bool
		ambiguous bool
		retryMin  time.Duration
	}{
		{"declined", stubAnswer{status: 402, body: `{"error":"card_declined"}`}, 402, CodeCardDeclined, true, false, 0},
		{"out of stock", stubAnswer{status: 409, body: `{"error":"out_of_stock"}`}, 409, CodeOutOfStock, true, false, 0},
		{"undeliverable", stubAnswer{status: 422, body: `{"error":"undeliverable"}`}, 422, CodeUndeliverable, true, false, 0},
		{"bad request", stubAnswer{status: 400, body: `{"error":"bad_request"}`}, 400, CodeBadRequest, true, false, 0},
		{"not found, no body", stubAnswer{status: 404}, 404, "", true, false, 0},
		{"request timeout", stubAnswer{status: 408}, 408, "", false, false, 0},
		{"rate limited", stubAnswer{status: 429, body: `{"error":"rate_limited"}`, retryAfter: "3"}, 429, CodeRateLimited, false, false, 3 * time.Second},
		{"internal, html body", stubAnswer{status: 500, body: `<html>oops</html>`}, 500, "", false, true, 0},
		{"unavailable with date", stubAnswer{status: 503, body: `{"error":"unavailable"}`, retryAfter: date}, 503, CodeUnavailable, false, true, 58 * time.Minute},
		{"success, unreadable", stubAnswer{status: 200, body: `{"transaction_id":`}, 0, "", false, true, 0},
		{"success, no ID", stubAnswer{status: 201, body: `{}`}, 0, "", false, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupStub(t, tc.answer, 0)
			_, err := b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1"})
			pe := requireProviderError(t, err, tc.status, tc.code)
			require.Equal(t, ProviderPayment, pe.Provider)
			require.Equal(t, OpCharge, pe.Op)
			require.Equal(t, tc.permanent, IsPermanent(err))
			require.Equal(t, tc.ambiguous, IsAmbiguous(err))
			require.GreaterOrEqual(t, RetryAfterOf(err), tc.retryMin)
			require.LessOrEqual(t, RetryAfterOf(err), max(tc.retryMin, time.Hour))
		})
	}
}

func TestHTTPClientReleaseNeedsNoID(t *testing.T) {
	t.Parallel()
	b := setupStub(t, stubAnswer{status: 200, body: `{"released":true}`}, 0)
	require.NoError(t, b.set.Inventory.Release(t.Context(), ReleaseRequest{IdempotencyKey: "o1:release", ReservationID: "r1"}))
}

func TestHTTPClientTimeout(t *testing.T) {
	t.Parallel()
	b := setupStub(t, stubAnswer{block: true}, 50*time.Millisecond)
	_, err := b.set.Shipping.Ship(t.Context(), ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1"})
	pe := requireProviderError(t, err, 0, "")
	require.Equal(t, ProviderShipping, pe.Provider)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, IsAmbiguous(err))
	require.False(t, IsPermanent(err))
}

func TestHTTPClientConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	set := newTestClient(t, base, time.Second)
	_, err := set.Inventory.Reserve(t.Context(), ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1"})
	requireProviderError(t, err, 0, "")
	require.True(t, IsAmbiguous(err))
	require.False(t, IsPermanent(err))
}
