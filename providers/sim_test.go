package providers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// simBundle is a simulator served over HTTP, with a client set and a ledger
// reader on the same Redis.
type simBundle struct {
	sim    *Simulator
	srv    *httptest.Server
	set    Set
	ledger *Ledger
	rdb    redis.UniversalClient
}

// simOpts tune setupSim.
type simOpts struct {
	cfg SimConfig
	// timeout is the client's per-call timeout; 0 means 5s.
	timeout time.Duration
}

func setupSim(t *testing.T, r *redistest.Instance, o simOpts) *simBundle {
	t.Helper()
	rdb := r.Client(t)
	sim := NewSimulator(rdb, o.cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: frees held responses before srv.Close waits
	return &simBundle{sim: sim, srv: srv, set: newTestClient(t, srv.URL, o.timeout), ledger: NewLedger(rdb), rdb: rdb}
}

// newTestClient returns the HTTP client set for a simulator at base.
func newTestClient(t *testing.T, base string, timeout time.Duration) Set {
	t.Helper()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	set, err := NewHTTP(HTTPConfig{
		InventoryURL: base + "/inventory",
		PaymentURL:   base + "/payment",
		ShippingURL:  base + "/shipping",
		RiskURL:      base + "/risk",
		Timeout:      timeout,
		Client:       hc,
	})
	require.NoError(t, err)
	return set
}

// all returns a provider's whole ledger.
func (b *simBundle) all(t *testing.T, provider string) []LedgerEntry {
	t.Helper()
	entries, err := b.ledger.All(t.Context(), provider)
	require.NoError(t, err)
	return entries
}

// do sends a raw request to the simulator and returns the status and body.
func (b *simBundle) do(t *testing.T, method, path, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

// requireProviderError asserts err is an *Error with the given status and
// code, and returns it.
func requireProviderError(t *testing.T, err error, status int, code string) *Error {
	t.Helper()
	var pe *Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, status, pe.Status, "status of %v", err)
	require.Equal(t, code, pe.Code, "code of %v", err)
	return pe
}

func TestSimulatorSuccessPaths(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		ctx := t.Context()
		items := []Item{{SKU: "sku-1", Qty: 2}}

		resID, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: items})
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(resID, "res_"), resID)
		txnID, err := b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "c1", AmountCents: 1250, Currency: "EUR"})
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(txnID, "txn_"), txnID)
		trk, err := b.set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1", CustomerID: "c1", ReservationID: resID, Items: items})
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(trk, "trk_"), trk)
		refID, err := b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: txnID, AmountCents: 1250, Currency: "EUR"})
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(refID, "ref_"), refID)
		require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: resID}))

		entries, err := b.ledger.ForOrder(ctx, "o1")
		require.NoError(t, err)
		type row struct{ provider, op, key, id, ref string }
		var got []row
		for _, e := range entries {
			require.Equal(t, "o1", e.OrderID)
			require.False(t, e.At.IsZero())
			got = append(got, row{e.Provider, e.Op, e.Key, e.ID, e.Ref})
		}
		require.Equal(t, []row{
			{ProviderInventory, OpReserve, "o1:reserve", resID, ""},
			{ProviderInventory, OpRelease, "o1:release", resID, ""},
			{ProviderPayment, OpCharge, "o1:charge", txnID, ""},
			{ProviderPayment, OpRefund, "o1:refund", refID, txnID},
			{ProviderShipping, OpShip, "o1:ship", trk, resID},
		}, got)
		require.Equal(t, int64(1250), entries[2].AmountCents)
		require.Equal(t, "EUR", entries[3].Currency)

		other, err := b.ledger.ForOrder(ctx, "o2")
		require.NoError(t, err)
		require.Empty(t, other)
	})
}

func TestSimulatorRepeatedKeyAppliesOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		items := []Item{{SKU: "sku-1", Qty: 1}}
		for _, tc := range []struct {
			provider string
			call     func(ctx context.Context) (string, error)
		}{
			{ProviderInventory, func(ctx context.Context) (string, error) {
				return b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: items})
			}},
			{ProviderPayment, func(ctx context.Context) (string, error) {
				return b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 100, Currency: "EUR"})
			}},
			{ProviderShipping, func(ctx context.Context) (string, error) {
				return b.set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1", Items: items})
			}},
		} {
			first, err := tc.call(t.Context())
			require.NoError(t, err)
			again, err := tc.call(t.Context())
			require.NoError(t, err)
			require.Equal(t, first, again, tc.provider)
			entries := b.all(t, tc.provider)
			require.Len(t, entries, 1, tc.provider)
			require.Equal(t, first, entries[0].ID)
		}
	})
}

func TestSimulatorConcurrentCallsApplyOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 100}})
		const n = 20
		var (
			wg           sync.WaitGroup
			txns, resIDs [n]string
			errs         [2 * n]error
		)
		for i := range n {
			wg.Go(func() {
				txns[i], errs[i] = b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 500, Currency: "USD"})
			})
			wg.Go(func() {
				resIDs[i], errs[n+i] = b.set.Inventory.Reserve(t.Context(), ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: []Item{{SKU: "a", Qty: 3}}})
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		for i := range n {
			require.Equal(t, txns[0], txns[i])
			require.Equal(t, resIDs[0], resIDs[i])
		}
		require.Len(t, b.all(t, ProviderPayment), 1)
		require.Len(t, b.all(t, ProviderInventory), 1)
		available, limited, err := b.ledger.Stock(t.Context(), "a")
		require.NoError(t, err)
		require.True(t, limited)
		require.Equal(t, 97, available)
	})
}

func TestSimulatorDeclinesArePermanent(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{
			InitialStock: 1,
			Inventory:    Faults{DeclineSKUs: []string{"gone"}},
			Payment:      Faults{DeclineCustomers: []string{"bad-card"}},
			Shipping:     Faults{DeclineCustomers: []string{"nowhere"}, DeclineSKUs: []string{"fragile"}},
		}})
		ctx := t.Context()
		for _, tc := range []struct {
			name   string
			call   func() error
			status int
			code   string
		}{
			{"card declined", func() error {
				_, err := b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "bad-card", AmountCents: 100})
				return err
			}, http.StatusPaymentRequired, CodeCardDeclined},
			{"declined sku", func() error {
				_, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o2:reserve", OrderID: "o2", Items: []Item{{SKU: "ok", Qty: 1}, {SKU: "gone", Qty: 1}}})
				return err
			}, http.StatusConflict, CodeOutOfStock},
			{"not enough stock", func() error {
				_, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o3:reserve", OrderID: "o3", Items: []Item{{SKU: "few", Qty: 1}, {SKU: "few", Qty: 1}}})
				return err
			}, http.StatusConflict, CodeOutOfStock},
			{"undeliverable customer", func() error {
				_, err := b.set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o4:ship", OrderID: "o4", CustomerID: "nowhere"})
				return err
			}, http.StatusUnprocessableEntity, CodeUndeliverable},
			{"undeliverable sku", func() error {
				_, err := b.set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o5:ship", OrderID: "o5", Items: []Item{{SKU: "fragile", Qty: 1}}})
				return err
			}, http.StatusUnprocessableEntity, CodeUndeliverable},
		} {
			err := tc.call()
			pe := requireProviderError(t, err, tc.status, tc.code)
			require.True(t, IsPermanent(err), tc.name)
			require.False(t, IsAmbiguous(err), tc.name)
			require.False(t, pe.Permanent() && pe.Ambiguous(), tc.name)
		}
		for _, p := range providerNames {
			require.Empty(t, b.all(t, p), p)
		}
		stock, limited, err := b.ledger.Stock(ctx, "few")
		require.NoError(t, err)
		require.Equal(t, []any{1, true}, []any{stock, limited}, "a refused reservation takes nothing")

		// The decline is the key's first answer: lifting the fault does not
		// change it, and a new key is served.
		require.NoError(t, b.sim.SetFaults(ProviderPayment, Faults{}))
		_, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "bad-card", AmountCents: 100})
		requireProviderError(t, err, http.StatusPaymentRequired, CodeCardDeclined)
		_, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge:2", OrderID: "o1", CustomerID: "bad-card", AmountCents: 100})
		require.NoError(t, err)
	})
}

func TestSimulatorFailureRate(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Payment: Faults{FailureRate: 1}}})
		_, err := b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 100})
		requireProviderError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
		require.False(t, IsPermanent(err))
		require.True(t, IsAmbiguous(err))
		require.Empty(t, b.all(t, ProviderPayment))

		// Nothing was stored under the key: the retry applies.
		require.NoError(t, b.sim.SetFaults(ProviderPayment, Faults{}))
		_, err = b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 100})
		require.NoError(t, err)
		require.Len(t, b.all(t, ProviderPayment), 1)
	})
}

func TestSimulatorRateLimit(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Inventory: Faults{RateLimitRate: 1, RetryAfter: 1500 * time.Millisecond}}})
		_, err := b.set.Inventory.Reserve(t.Context(), ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: []Item{{SKU: "a", Qty: 1}}})
		pe := requireProviderError(t, err, http.StatusTooManyRequests, CodeRateLimited)
		require.Equal(t, 2*time.Second, pe.RetryAfter, "1.5s is sent as 2 whole seconds")
		require.Equal(t, 2*time.Second, RetryAfterOf(err))
		require.False(t, IsPermanent(err))
		require.False(t, IsAmbiguous(err))
		require.Empty(t, b.all(t, ProviderInventory))
	})
}

func TestSimulatorTimeoutKeepsEffect(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Payment: Faults{TimeoutRate: 1}}, timeout: 300 * time.Millisecond})
		charge := ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 900, Currency: "EUR"}
		_, err := b.set.Payment.Charge(t.Context(), charge)
		pe := requireProviderError(t, err, 0, "")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.True(t, pe.Ambiguous())
		require.False(t, pe.Permanent())

		// The response was lost, the charge was not.
		var entries []LedgerEntry
		require.Eventually(t, func() bool {
			entries = b.all(t, ProviderPayment)
			return len(entries) == 1
		}, 5*time.Second, 5*time.Millisecond)

		require.NoError(t, b.sim.SetFaults(ProviderPayment, Faults{}))
		id, err := b.set.Payment.Charge(t.Context(), charge)
		require.NoError(t, err)
		require.Equal(t, entries[0].ID, id)
		require.Len(t, b.all(t, ProviderPayment), 1)
	})
}

func TestSimulatorTimeoutHoldIsBounded(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Shipping: Faults{TimeoutRate: 1, TimeoutHold: 20 * time.Millisecond}}})
		start := time.Now()
		_, err := b.set.Shipping.Ship(t.Context(), ShipRequest{IdempotencyKey: "o1:ship", OrderID: "o1"})
		requireProviderError(t, err, 0, "")
		require.Less(t, time.Since(start), 4*time.Second, "the hold ended before the 5s client timeout")
		require.True(t, IsAmbiguous(err))
		require.Len(t, b.all(t, ProviderShipping), 1)
	})
}

func TestSimulatorLatency(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Payment: Faults{Latency: 30 * time.Millisecond}}})
		start := time.Now()
		_, err := b.set.Payment.Refund(t.Context(), RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: "txn_1"})
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	})
}

func TestSimulatorReleaseRestoresStockOnce(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 10}})
		ctx := t.Context()
		stock := func(sku string) int {
			n, limited, err := b.ledger.Stock(ctx, sku)
			require.NoError(t, err)
			require.True(t, limited)
			return n
		}
		id, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: []Item{{SKU: "a", Qty: 3}, {SKU: "b", Qty: 1}, {SKU: "b", Qty: 1}}})
		require.NoError(t, err)
		require.Equal(t, 7, stock("a"))
		require.Equal(t, 8, stock("b"))
		require.Equal(t, 10, stock("untouched"))

		release := ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: id}
		for range 3 {
			require.NoError(t, b.set.Inventory.Release(ctx, release))
			require.Equal(t, 10, stock("a"))
			require.Equal(t, 10, stock("b"))
		}
		require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o9:release", OrderID: "o9", ReservationID: "res_unknown"}))
		entries := b.all(t, ProviderInventory)
		require.Len(t, entries, 2)
		require.Equal(t, OpRelease, entries[1].Op)
		require.Equal(t, id, entries[1].ID)

		status, body := b.do(t, http.MethodGet, "/inventory/stock/a", "", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"sku":"a","available":10,"limited":true}`, body)
	})
}

func TestSimulatorUnlimitedStock(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		for i := range 3 {
			_, err := b.set.Inventory.Reserve(t.Context(), ReserveRequest{IdempotencyKey: "o:reserve:" + string(rune('a'+i)), OrderID: "o", Items: []Item{{SKU: "a", Qty: 1000}}})
			require.NoError(t, err)
		}
		_, limited, err := b.ledger.Stock(t.Context(), "a")
		require.NoError(t, err)
		require.False(t, limited)
	})
}

func TestSimulatorRejectsBadRequests(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		valid := map[string]string{
			"/inventory/reservations":            `{"order_id":"o1","items":[{"sku":"a","qty":1}]}`,
			"/inventory/reservations/r1/release": `{}`,
			"/payment/charges":                   `{"order_id":"o1","customer_id":"c","amount_cents":1,"currency":"EUR"}`,
			"/payment/refunds":                   `{"order_id":"o1","transaction_id":"t","amount_cents":1,"currency":"EUR"}`,
			"/shipping/shipments":                `{"order_id":"o1","reservation_id":"r","items":[]}`,
		}
		for path, body := range valid {
			status, answer := b.do(t, http.MethodPost, path, "", body)
			require.Equal(t, http.StatusBadRequest, status, path)
			require.JSONEq(t, `{"error":"bad_request","detail":"missing Idempotency-Key header"}`, answer, path)

			status, answer = b.do(t, http.MethodPost, path, "k", `{"order_id":`)
			require.Equal(t, http.StatusBadRequest, status, path)
			require.Contains(t, answer, `"error":"bad_request"`, path)
		}
		for path, body := range map[string]string{
			"/inventory/reservations": `{"order_id":"o1","items":[]}`,
			"/payment/charges":        `{"customer_id":"c"}`,
			"/payment/refunds":        `{"order_id":"o1"}`,
			"/shipping/shipments":     `{"order_id":"o1","items":[{"sku":"a","qty":0}]}`,
		} {
			status, _ := b.do(t, http.MethodPost, path, "k", body)
			require.Equal(t, http.StatusBadRequest, status, path)
		}
		status, _ := b.do(t, http.MethodPost, "/payment/charges", "k", `{"order_id":"`+strings.Repeat("x", maxBodyBytes)+`"}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, status)

		// Through the client, a missing key is a 400: no decline, so not
		// permanent, and unexpected, so ambiguous.
		_, err := b.set.Payment.Charge(t.Context(), ChargeRequest{OrderID: "o1", AmountCents: 1})
		requireProviderError(t, err, http.StatusBadRequest, CodeBadRequest)
		require.False(t, IsPermanent(err))
		require.True(t, IsUnexpected(err))
		require.True(t, IsAmbiguous(err))

		for _, p := range providerNames {
			require.Empty(t, b.all(t, p), p)
		}
	})
}

func TestSimulatorFaultsOverHTTP(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		charge := func() error {
			_, err := b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", AmountCents: 1})
			return err
		}

		status, body := b.do(t, http.MethodPut, "/payment/faults", "", `{"failure_rate":1,"latency":"1ms","decline_customers":["c9"]}`)
		require.Equal(t, http.StatusOK, status, body)
		want := `{"failure_rate":1,"latency":"1ms","timeout_rate":0,"timeout_hold":"30s","rate_limit_rate":0,"retry_after":"1s","decline_customers":["c9"],"decline_skus":[],` +
			`"in_progress_rate":0,"in_progress_hold":"6s","stray_rate":0,"broken":[]}`
		require.JSONEq(t, want, body)
		status, body = b.do(t, http.MethodGet, "/payment/faults", "", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, want, body)
		f, err := b.sim.Faults(ProviderPayment)
		require.NoError(t, err)
		require.Equal(t, time.Millisecond, f.Latency)
		requireProviderError(t, charge(), http.StatusServiceUnavailable, CodeUnavailable)

		for _, tc := range []struct {
			path, body string
			status     int
		}{
			{"/payment/faults", `{"failure_rate":2}`, http.StatusBadRequest},
			{"/payment/faults", `{"latency":"soon"}`, http.StatusBadRequest},
			{"/payment/faults", `{"retry_after":"-1s"}`, http.StatusBadRequest},
			{"/payment/faults", `{"broken":["sometimes"]}`, http.StatusBadRequest},
			{"/payment/faults", `{"in_progress_rate":1.5}`, http.StatusBadRequest},
			{"/payment/faults", `{"stray_rate":-1}`, http.StatusBadRequest},
			{"/payment/faults", `{"in_progress_hold":"later"}`, http.StatusBadRequest},
			{"/payment/faults", `[`, http.StatusBadRequest},
			{"/billing/faults", `{}`, http.StatusNotFound},
		} {
			status, body := b.do(t, http.MethodPut, tc.path, "", tc.body)
			require.Equal(t, tc.status, status, "%s %s: %s", tc.path, tc.body, body)
		}
		require.ErrorIs(t, b.sim.SetFaults("billing", Faults{}), ErrUnknownProvider)

		// The new knobs round-trip.
		status, body = b.do(t, http.MethodPut, "/shipping/faults", "",
			`{"in_progress_rate":0.5,"in_progress_hold":"50ms","stray_rate":0.25,"broken":["ignore-keys","drop-compensations"]}`)
		require.Equal(t, http.StatusOK, status, body)
		f, err = b.sim.Faults(ProviderShipping)
		require.NoError(t, err)
		require.Equal(t, 0.5, f.InProgressRate)
		require.Equal(t, 50*time.Millisecond, f.InProgressHold)
		require.Equal(t, 0.25, f.StrayRate)
		require.Equal(t, []string{BrokenIgnoreKeys, BrokenDropCompensations}, f.Broken)
		require.Contains(t, body, `"broken":["ignore-keys","drop-compensations"]`)

		status, _ = b.do(t, http.MethodPut, "/payment/faults", "", `{}`)
		require.Equal(t, http.StatusOK, status)
		require.NoError(t, charge())

		// The other providers kept their faults.
		status, body = b.do(t, http.MethodGet, "/inventory/faults", "", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `"failure_rate":0`)
	})
}

func TestSimulatorLedgerAndHealthOverHTTP(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{})
		for _, order := range []string{"o1", "o2"} {
			_, err := b.set.Payment.Charge(t.Context(), ChargeRequest{IdempotencyKey: order + ":charge", OrderID: order, AmountCents: 42, Currency: "EUR"})
			require.NoError(t, err)
		}
		read := func(path string) []LedgerEntry {
			status, body := b.do(t, http.MethodGet, path, "", "")
			require.Equal(t, http.StatusOK, status, body)
			var entries []LedgerEntry
			require.NoError(t, json.Unmarshal([]byte(body), &entries))
			return entries
		}
		one := read("/payment/ledger?order_id=o2")
		require.Len(t, one, 1)
		require.Equal(t, "o2:charge", one[0].Key)
		require.Equal(t, int64(42), one[0].AmountCents)
		require.Len(t, read("/payment/ledger"), 2)
		require.Empty(t, read("/shipping/ledger?order_id=o1"))

		status, _ := b.do(t, http.MethodGet, "/billing/ledger", "", "")
		require.Equal(t, http.StatusNotFound, status)
		_, err := b.ledger.All(t.Context(), "billing")
		require.ErrorIs(t, err, ErrUnknownProvider)

		status, body := b.do(t, http.MethodGet, "/healthz", "", "")
		require.Equal(t, http.StatusOK, status)
		require.JSONEq(t, `{"status":"ok"}`, body)
	})
}

func TestSimulatorsShareOneRedis(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 5}})
		other := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 5}})
		req := ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: []Item{{SKU: "a", Qty: 2}}}
		first, err := b.set.Inventory.Reserve(t.Context(), req)
		require.NoError(t, err)
		again, err := other.set.Inventory.Reserve(t.Context(), req)
		require.NoError(t, err)
		require.Equal(t, first, again)
		require.Len(t, b.all(t, ProviderInventory), 1)
		n, _, err := other.ledger.Stock(t.Context(), "a")
		require.NoError(t, err)
		require.Equal(t, 3, n)
	})
}

func TestLockedRandIsRepeatable(t *testing.T) {
	t.Parallel()
	a, b := newLockedRand(7), newLockedRand(7)
	hits := 0
	for range 1000 {
		ha := a.hit(0.3)
		require.Equal(t, ha, b.hit(0.3))
		if ha {
			hits++
		}
	}
	require.InDelta(t, 300, hits, 60)
	require.False(t, a.hit(0))
	require.True(t, a.hit(1))
}

func TestSimConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, SimConfig{}.Validate())
	err := SimConfig{Shipping: Faults{TimeoutRate: 1.5}}.Validate()
	require.ErrorContains(t, err, "SimConfig.Shipping")
	require.ErrorContains(t, err, "Faults.TimeoutRate")
	require.ErrorContains(t, SimConfig{Payment: Faults{Latency: -time.Second}}.Validate(), "Faults.Latency")

	// NewSimulator forces such values into range.
	s := NewSimulator(nil, SimConfig{Inventory: Faults{FailureRate: 3, Latency: -time.Second}})
	f, err := s.Faults(ProviderInventory)
	require.NoError(t, err)
	require.Equal(t, 1.0, f.FailureRate)
	require.Equal(t, time.Duration(0), f.Latency)
	_, err = s.Faults("billing")
	require.ErrorIs(t, err, ErrUnknownProvider)
}
