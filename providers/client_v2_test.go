package providers

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// v2Request is one request a v2 stub received, with the headers the new
// calls depend on.
type v2Request struct {
	method, path, key, prefer string
	body                      map[string]any
}

// setupV2Stub serves every call with status and body, records the
// requests, and returns a client set pointed at it under /p.
func setupV2Stub(t *testing.T, status int, body string) (Set, chan v2Request) {
	t.Helper()
	reqs := make(chan v2Request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := v2Request{method: r.Method, path: r.URL.EscapedPath(), key: r.Header.Get("Idempotency-Key"), prefer: r.Header.Get("Prefer")}
		data, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(data, &rec.body)
		reqs <- rec
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return newTestClient(t, srv.URL+"/p", 0), reqs
}

// errorKind names how a client classified an answer.
func errorKind(err error) string {
	switch {
	case err == nil:
		return "ok"
	case IsDecline(err):
		return "decline"
	case IsInProgress(err):
		return "in progress"
	case IsUnexpected(err):
		return "unexpected"
	case IsAmbiguous(err):
		return "ambiguous"
	}
	return "retryable"
}

func TestIdempotencyKeyFor(t *testing.T) {
	t.Parallel()
	require.Equal(t, "o1:reserve", IdempotencyKeyFor("o1", OpReserve, ""))
	require.Equal(t, "o1:reserve:wh-east", IdempotencyKeyFor("o1", OpReserve, "wh-east"))
	require.Equal(t, "o1~2:release:wh-east", IdempotencyKeyFor("o1~2", OpRelease, "wh-east"))
	require.Equal(t, IdempotencyKey("o1", OpAssess), IdempotencyKeyFor("o1", OpAssess, ""))
}

func TestHTTPConfigRiskURL(t *testing.T) {
	t.Parallel()
	good := HTTPConfig{InventoryURL: "http://h/inventory", PaymentURL: "http://h/payment", ShippingURL: "http://h/shipping"}
	set, err := NewHTTP(good)
	require.NoError(t, err, "the risk agent is optional")
	require.NotNil(t, set.Risk)
	_, err = set.Risk.Assess(t.Context(), AssessRequest{IdempotencyKey: "o1:assess", OrderID: "o1"})
	require.ErrorIs(t, err, ErrNoRiskProvider)
	pe := requireProviderError(t, err, 0, "")
	require.Equal(t, ProviderRisk, pe.Provider)
	require.Equal(t, OpAssess, pe.Op)
	require.False(t, pe.Decline())

	bad := good
	bad.RiskURL = "risk.example"
	_, err = NewHTTP(bad)
	require.ErrorContains(t, err, "HTTPConfig.RiskURL")
}

func TestHTTPClientAssess(t *testing.T) {
	t.Parallel()
	set, reqs := setupV2Stub(t, http.StatusOK, `{"decision":"review","reason":"big"}`)
	req := AssessRequest{
		IdempotencyKey: "o1:assess", OrderID: "o1", CustomerID: "c1", AmountCents: 5000, Currency: "EUR",
		Items: []Item{{SKU: "a", Qty: 2}},
	}
	a, err := set.Risk.Assess(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, Assessment{Decision: DecisionReview, Reason: "big"}, a)
	require.Equal(t, v2Request{
		method: http.MethodPost, path: "/p/risk/assessments", key: "o1:assess",
		body: map[string]any{
			"order_id": "o1", "customer_id": "c1", "amount_cents": 5000.0, "currency": "EUR",
			"items": []any{map[string]any{"sku": "a", "qty": 2.0}},
		},
	}, <-reqs)

	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"decision":"approve","reason":"fine"}`, "ok"},
		{200, `{"decision":"reject","reason":"no"}`, "ok"}, // a decision, not a decline
		{200, `{"decision":"maybe"}`, "ambiguous"},
		{200, `{"reason":"none"}`, "ambiguous"},
		{200, `not json`, "ambiguous"},
		{409, `{"error":"idempotency_key_in_use"}`, "in progress"},
		{409, `{"error":"out_of_stock"}`, "unexpected"},
		{422, `{"error":"undeliverable"}`, "unexpected"},
		{402, `{"error":"card_declined"}`, "unexpected"},
		{401, `{"error":"unauthorized"}`, "unexpected"},
		{404, `{"error":"not_found"}`, "unexpected"},
		{429, `{"error":"rate_limited"}`, "retryable"},
		{503, `{"error":"unavailable"}`, "ambiguous"},
	} {
		set, _ := setupV2Stub(t, tc.status, tc.body)
		a, err := set.Risk.Assess(t.Context(), req)
		require.Equal(t, tc.want, errorKind(err), "%d %s: %v", tc.status, tc.body, err)
		if err == nil {
			continue
		}
		require.Empty(t, a)
		wantStatus, wantCode := tc.status, ""
		if tc.status == http.StatusOK {
			wantStatus = 0 // a success that cannot be used is no answer
		} else {
			var b errorBody
			require.NoError(t, json.Unmarshal([]byte(tc.body), &b))
			wantCode = b.Error
		}
		pe := requireProviderError(t, err, wantStatus, wantCode)
		require.Equal(t, []string{ProviderRisk, OpAssess}, []string{pe.Provider, pe.Op})
	}
}

func TestHTTPClientReserveAtWarehouse(t *testing.T) {
	t.Parallel()
	set, reqs := setupV2Stub(t, http.StatusOK, `{"reservation_id":"r1","warehouse":"wh-a"}`)
	id, err := set.Inventory.Reserve(t.Context(), ReserveRequest{
		IdempotencyKey: "o1:reserve:wh-a", OrderID: "o1", Items: []Item{{SKU: "a", Qty: 1}}, Warehouse: "wh-a",
	})
	require.NoError(t, err)
	require.Equal(t, "r1", id)
	got := <-reqs
	require.Equal(t, "o1:reserve:wh-a", got.key)
	require.Equal(t, "wh-a", got.body["warehouse"])
}

func TestHTTPClientShipAsync(t *testing.T) {
	t.Parallel()
	req := ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1", ReservationID: "r1", Items: []Item{{SKU: "a", Qty: 1}}}
	set, reqs := setupV2Stub(t, http.StatusAccepted, `{"shipment_id":"s/1","status":"pending"}`)
	s, err := set.Shipping.ShipAsync(t.Context(), req)
	require.NoError(t, err)
	require.Equal(t, Shipment{ID: "s/1", Status: ShipmentPending}, s)
	got := <-reqs
	require.Equal(t, []string{http.MethodPost, "/p/shipping/shipments", "o1:ship", "respond-async"}, []string{got.method, got.path, got.key, got.prefer})
	require.Equal(t, "r1", got.body["reservation_id"])

	for _, tc := range []struct {
		status int
		body   string
		want   string
		ship   Shipment
	}{
		{202, `{"shipment_id":"s1"}`, "ok", Shipment{ID: "s1", Status: ShipmentPending}},
		{202, `{"shipment_id":"s1","status":"in_transit","progress":30}`, "ok", Shipment{ID: "s1", Status: ShipmentInTransit, Progress: 30}},
		{202, `{"status":"pending"}`, "ambiguous", Shipment{}},
		{202, `{"shipment_id":"s1","status":"lost"}`, "ambiguous", Shipment{}},
		{202, `garbage`, "ambiguous", Shipment{}},
		// A provider that ships at once.
		{200, `{"tracking_number":"t1"}`, "ok", Shipment{Status: ShipmentDelivered, Progress: 100, TrackingNumber: "t1"}},
		{200, `{}`, "ambiguous", Shipment{}},
		{422, `{"error":"undeliverable"}`, "decline", Shipment{}},
		{422, `{"error":"nope"}`, "unexpected", Shipment{}},
		{409, `{"error":"idempotency_key_in_use"}`, "in progress", Shipment{}},
		{404, `{"error":"not_found"}`, "unexpected", Shipment{}},
		{429, `{}`, "retryable", Shipment{}},
		{500, `{}`, "ambiguous", Shipment{}},
	} {
		set, _ := setupV2Stub(t, tc.status, tc.body)
		s, err := set.Shipping.ShipAsync(t.Context(), req)
		require.Equal(t, tc.want, errorKind(err), "%d %s: %v", tc.status, tc.body, err)
		require.Equal(t, tc.ship, s, "%d %s", tc.status, tc.body)
		if err != nil {
			var pe *Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, []string{ProviderShipping, OpShip}, []string{pe.Provider, pe.Op})
		}
	}
}

func TestHTTPClientGetShipment(t *testing.T) {
	t.Parallel()
	set, reqs := setupV2Stub(t, http.StatusOK, `{"shipment_id":"s/1","status":"in_transit","progress":40}`)
	s, err := set.Shipping.GetShipment(t.Context(), "s/1")
	require.NoError(t, err)
	require.Equal(t, Shipment{ID: "s/1", Status: ShipmentInTransit, Progress: 40}, s)
	got := <-reqs
	require.Equal(t, v2Request{method: http.MethodGet, path: "/p/shipping/shipments/s%2F1"}, got, "a read carries no key and no body")

	for _, tc := range []struct {
		status int
		body   string
		want   string
		ship   Shipment
	}{
		{200, `{"shipment_id":"s1","status":"pending","progress":0}`, "ok", Shipment{ID: "s1", Status: ShipmentPending}},
		{200, `{"status":"in_transit","progress":250}`, "ok", Shipment{ID: "s1", Status: ShipmentInTransit, Progress: 100}},
		{200, `{"shipment_id":"s1","status":"delivered","progress":100,"tracking_number":"t1"}`, "ok",
			Shipment{ID: "s1", Status: ShipmentDelivered, Progress: 100, TrackingNumber: "t1"}},
		// The shipping decline is a shipment, not an error: the engine decides.
		{200, `{"shipment_id":"s1","status":"failed","progress":0,"error":"undeliverable"}`, "ok",
			Shipment{ID: "s1", Status: ShipmentFailed, Error: CodeUndeliverable}},
		{200, `{"shipment_id":"s1","status":"failed","progress":60,"error":"lost_in_transit"}`, "ok",
			Shipment{ID: "s1", Status: ShipmentFailed, Progress: 60, Error: "lost_in_transit"}},
		{200, `{"shipment_id":"s1","status":"delivered","progress":100}`, "ambiguous", Shipment{}},
		{200, `{"shipment_id":"s1","status":"teleported"}`, "ambiguous", Shipment{}},
		{200, `[`, "ambiguous", Shipment{}},
		{404, `{"error":"not_found"}`, "unexpected", Shipment{}},
		{422, `{"error":"undeliverable"}`, "unexpected", Shipment{}}, // only POST's 422 declines
		{401, `{"error":"unauthorized"}`, "unexpected", Shipment{}},
		{429, `{}`, "retryable", Shipment{}},
		{503, `{}`, "ambiguous", Shipment{}},
	} {
		set, _ := setupV2Stub(t, tc.status, tc.body)
		s, err := set.Shipping.GetShipment(t.Context(), "s1")
		require.Equal(t, tc.want, errorKind(err), "%d %s: %v", tc.status, tc.body, err)
		require.Equal(t, tc.ship, s, "%d %s", tc.status, tc.body)
		if err != nil {
			var pe *Error
			require.ErrorAs(t, err, &pe)
			require.Equal(t, []string{ProviderShipping, OpTrack}, []string{pe.Provider, pe.Op})
		}
	}
	require.True(t, Shipment{Status: ShipmentFailed, Error: CodeUndeliverable}.Undeliverable())
	require.False(t, Shipment{Status: ShipmentFailed, Error: "lost_in_transit"}.Undeliverable())
	require.True(t, Shipment{Status: ShipmentDelivered}.Done())
	require.False(t, Shipment{Status: ShipmentInTransit}.Done())
}
