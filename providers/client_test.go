package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// class is how the client classifies an answer.
type class int

const (
	classSuccess    class = iota // no error
	classDecline                 // permanent, applied nothing
	classRetryable               // 408, 429: applied nothing, retry
	classInProgress              // 409 idempotency_key_in_use: ambiguous, retry later
	classUnexpected              // any other answer: ambiguous
	classAmbiguous               // no answer, 5xx, unreadable success
)

// requireClass asserts that err is classified as want, with each predicate
// agreeing.
func requireClass(t *testing.T, want class, err error, msgAndArgs ...any) {
	t.Helper()
	if want == classSuccess {
		require.NoError(t, err, msgAndArgs...)
		return
	}
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, want == classDecline, IsDecline(err), msgAndArgs...)
	require.Equal(t, want == classDecline, IsPermanent(err), msgAndArgs...)
	require.Equal(t, want == classInProgress, IsInProgress(err), msgAndArgs...)
	require.Equal(t, want == classUnexpected, IsUnexpected(err), msgAndArgs...)
	require.Equal(t, want >= classInProgress, IsAmbiguous(err), msgAndArgs...)
}

// callOp calls one operation of set, as the engine would.
func callOp(ctx context.Context, set Set, op string) error {
	var err error
	switch op {
	case OpReserve:
		_, err = set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: []Item{{SKU: "a", Qty: 1}}})
	case OpRelease:
		err = set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: "r1"})
	case OpCharge:
		_, err = set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1"})
	case OpRefund:
		_, err = set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: "t1"})
	case OpShip:
		_, err = set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1"})
	case OpAssess:
		_, err = set.Risk.Assess(ctx, AssessRequest{IdempotencyKey: "o1:assess", OrderID: "o1"})
	}
	return err
}

// allOps lists every operation with its provider.
var allOps = []struct{ provider, op string }{
	{ProviderInventory, OpReserve}, {ProviderInventory, OpRelease},
	{ProviderPayment, OpCharge}, {ProviderPayment, OpRefund},
	{ProviderShipping, OpShip}, {ProviderRisk, OpAssess},
}

// Every answer PROVIDERS.md names, sent to every operation: a decline is
// one only for its own operation with its own code; everything else but
// 408, 429 and 5xx is unexpected, and so ambiguous.
func TestHTTPClientClassifiesAnswers(t *testing.T) {
	t.Parallel()
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name     string
		answer   stubAnswer
		status   int
		code     string
		class    class
		declines string // the operation for which the answer is a decline
		retryMin time.Duration
	}{
		{"card declined", stubAnswer{status: 402, body: `{"error":"card_declined"}`}, 402, CodeCardDeclined, classUnexpected, OpCharge, 0},
		{"out of stock", stubAnswer{status: 409, body: `{"error":"out_of_stock"}`}, 409, CodeOutOfStock, classUnexpected, OpReserve, 0},
		{"undeliverable", stubAnswer{status: 422, body: `{"error":"undeliverable"}`}, 422, CodeUndeliverable, classUnexpected, OpShip, 0},
		{"402 without code", stubAnswer{status: 402}, 402, "", classUnexpected, "", 0},
		{"409 without code", stubAnswer{status: 409, body: `{}`}, 409, "", classUnexpected, "", 0},
		{"409 other code", stubAnswer{status: 409, body: `{"error":"conflict"}`}, 409, "conflict", classUnexpected, "", 0},
		{"422 without code", stubAnswer{status: 422, body: `{"error":"validation_failed"}`}, 422, "validation_failed", classUnexpected, "", 0},
		{"409 out_of_stock unreadable", stubAnswer{status: 409, body: `out_of_stock`}, 409, "", classUnexpected, "", 0},
		{"decline code, wrong status", stubAnswer{status: 400, body: `{"error":"card_declined"}`}, 400, CodeCardDeclined, classUnexpected, "", 0},
		{"in progress", stubAnswer{status: 409, body: `{"error":"idempotency_key_in_use"}`, retryAfter: "1"}, 409, CodeInProgress, classInProgress, "", time.Second},
		{"unauthorized", stubAnswer{status: 401, body: `{"error":"unauthorized"}`, retryAfter: "5"}, 401, CodeUnauthorized, classUnexpected, "", 5 * time.Second},
		{"forbidden", stubAnswer{status: 403, body: `<html>no</html>`}, 403, "", classUnexpected, "", 0},
		{"not found", stubAnswer{status: 404, body: `{"error":"not_found"}`}, 404, CodeNotFound, classUnexpected, "", 0},
		{"not found, no body", stubAnswer{status: 404}, 404, "", classUnexpected, "", 0},
		{"bad request", stubAnswer{status: 400, body: `{"error":"bad_request"}`}, 400, CodeBadRequest, classUnexpected, "", 0},
		{"request timeout", stubAnswer{status: 408}, 408, "", classRetryable, "", 0},
		{"rate limited", stubAnswer{status: 429, body: `{"error":"rate_limited"}`, retryAfter: "3"}, 429, CodeRateLimited, classRetryable, "", 3 * time.Second},
		{"internal, html body", stubAnswer{status: 500, body: `<html>oops</html>`}, 500, "", classAmbiguous, "", 0},
		{"bad gateway", stubAnswer{status: 502}, 502, "", classAmbiguous, "", 0},
		{"unavailable with date", stubAnswer{status: 503, body: `{"error":"unavailable"}`, retryAfter: date}, 503, CodeUnavailable, classAmbiguous, "", 58 * time.Minute},
		{"gateway timeout", stubAnswer{status: 504}, 504, "", classAmbiguous, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupStub(t, tc.answer, 0)
			for _, o := range allOps {
				err := callOp(t.Context(), b.set, o.op)
				want := tc.class
				if o.op == tc.declines {
					want = classDecline
				}
				requireClass(t, want, err, o.op)
				pe := requireProviderError(t, err, tc.status, tc.code)
				require.Equal(t, o.provider, pe.Provider)
				require.Equal(t, o.op, pe.Op)
				require.GreaterOrEqual(t, RetryAfterOf(err), tc.retryMin, o.op)
				require.LessOrEqual(t, RetryAfterOf(err), max(tc.retryMin, time.Hour), o.op)
			}
		})
	}
}

// A success whose answer cannot be read, or lacks the ID it must carry, is
// ambiguous: the effect exists but its ID is lost. A release needs no ID.
func TestHTTPClientUnreadableSuccess(t *testing.T) {
	t.Parallel()
	for _, answer := range []stubAnswer{
		{status: 200, body: `{"transaction_id":`},
		{status: 200, body: `<html>ok</html>`},
		{status: 201, body: `{}`},
		{status: 200, body: `{"refund_id":""}`},
		{status: 200, body: `{"refunded":true}`},
	} {
		t.Run(answer.body, func(t *testing.T) {
			t.Parallel()
			b := setupStub(t, answer, 0)
			for _, o := range allOps {
				err := callOp(t.Context(), b.set, o.op)
				if o.op == OpRelease {
					requireClass(t, classSuccess, err, o.op)
					continue
				}
				requireClass(t, classAmbiguous, err, o.op)
				requireProviderError(t, err, 0, "")
			}
		})
	}
}

// The classification of hand-built errors, over every status and code a
// provider might send to every operation: each failure is exactly one of a
// decline, a retryable refusal (408, 429) or ambiguous.
func TestErrorClassesArePartition(t *testing.T) {
	t.Parallel()
	codes := []string{"", CodeOutOfStock, CodeCardDeclined, CodeUndeliverable, CodeInProgress, CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeRateLimited, CodeUnavailable, CodeInternal}
	declines := map[[2]string]struct {
		status int
		code   string
	}{
		{ProviderInventory, OpReserve}: {409, CodeOutOfStock},
		{ProviderPayment, OpCharge}:    {402, CodeCardDeclined},
		{ProviderShipping, OpShip}:     {422, CodeUndeliverable},
	}
	for _, o := range allOps {
		for status := 0; status < 600; status++ {
			if status > 0 && status < 300 {
				continue
			}
			for _, code := range codes {
				e := &Error{Provider: o.provider, Op: o.op, Status: status, Code: code}
				d, isDeclineOp := declines[[2]string{o.provider, o.op}]
				wantDecline := isDeclineOp && d.status == status && d.code == code
				retryable := status == 408 || status == 429
				inProgress := status == 409 && code == CodeInProgress
				unexpected := status != 0 && status < 500 && !wantDecline && !retryable && !inProgress
				msg := fmt.Sprintf("%s %s %d %q", o.provider, o.op, status, code)
				require.Equal(t, wantDecline, e.Decline(), msg)
				require.Equal(t, wantDecline, e.Permanent(), msg)
				require.Equal(t, inProgress, e.InProgress(), msg)
				require.Equal(t, unexpected, e.Unexpected(), msg)
				require.Equal(t, !wantDecline && !retryable, e.Ambiguous(), msg)
			}
		}
	}
	// A non-provider error is ambiguous and nothing else.
	other := errors.New("boom")
	require.True(t, IsAmbiguous(other))
	require.False(t, IsDecline(other) || IsPermanent(other) || IsInProgress(other) || IsUnexpected(other))
	require.Zero(t, RetryAfterOf(other))
	require.False(t, IsAmbiguous(nil))
	// Wrapped, it keeps its class.
	wrapped := fmt.Errorf("charging: %w", &Error{Provider: ProviderPayment, Op: OpCharge, Status: 402, Code: CodeCardDeclined})
	require.True(t, IsDecline(wrapped))
}

// A refund that finds nothing to refund answers {"refund_id":"",
// "refunded":false}: no error and no ID. An empty transaction ID is sent as
// it is, for the provider to refund by key.
func TestHTTPClientRefundOfNothing(t *testing.T) {
	t.Parallel()
	b := setupStub(t, stubAnswer{status: 200, body: `{"refund_id":"","refunded":false}`}, 0)
	id, err := b.set.Payment.Refund(t.Context(), RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", AmountCents: 5, Currency: "EUR"})
	require.NoError(t, err)
	require.Empty(t, id)
	require.Equal(t, recorded{http.MethodPost, "/p/payment/refunds", "o1:refund",
		map[string]any{"order_id": "o1", "transaction_id": "", "amount_cents": 5.0, "currency": "EUR"}}, <-b.reqs)

	// A charge answering so still lacks its ID.
	_, err = b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1"})
	requireClass(t, classAmbiguous, err)
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
