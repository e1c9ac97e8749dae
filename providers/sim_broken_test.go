package providers

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// brokenAll breaks every provider in mode, on top of f.
func brokenAll(cfg SimConfig, mode string) SimConfig {
	for _, f := range []*Faults{&cfg.Inventory, &cfg.Payment, &cfg.Shipping} {
		f.Broken = append(f.Broken, mode)
	}
	return cfg
}

// keyCounts counts a provider's ledger entries per idempotency key.
func (b *simBundle) keyCounts(t *testing.T, provider string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, e := range b.all(t, provider) {
		counts[e.Key]++
	}
	return counts
}

// ignore-keys: every call applies again, under the same key.
func TestSimulatorBrokenIgnoreKeys(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: brokenAll(SimConfig{InitialStock: 10}, BrokenIgnoreKeys)})
		ctx := t.Context()
		ids := map[string]string{}
		for range 2 {
			res, err := opCall(ctx, b.set, OpReserve, "o1", "")
			require.NoError(t, err)
			txn, err := opCall(ctx, b.set, OpCharge, "o1", "")
			require.NoError(t, err)
			trk, err := opCall(ctx, b.set, OpShip, "o1", res)
			require.NoError(t, err)
			ref, err := opCall(ctx, b.set, OpRefund, "o1", txn)
			require.NoError(t, err)
			_, err = opCall(ctx, b.set, OpRelease, "o1", res)
			require.NoError(t, err)
			for op, id := range map[string]string{OpReserve: res, OpCharge: txn, OpShip: trk, OpRefund: ref} {
				if ids[op] == "" {
					ids[op] = id
				}
				require.Equal(t, ids[op], id, "%s answers its first answer", op)
			}
		}
		require.Equal(t, map[string]int{"o1:reserve": 2, "o1:release": 2}, b.keyCounts(t, ProviderInventory))
		require.Equal(t, map[string]int{"o1:charge": 2, "o1:refund": 2}, b.keyCounts(t, ProviderPayment))
		require.Equal(t, map[string]int{"o1:ship": 2}, b.keyCounts(t, ProviderShipping))
	})
}

// apply-declines: a decline applies its effect, and answers the decline.
func TestSimulatorBrokenApplyDeclines(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: brokenAll(SimConfig{
			InitialStock: 1,
			Inventory:    Faults{DeclineSKUs: []string{"gone"}},
			Payment:      Faults{DeclineCustomers: []string{"c-bad"}},
			Shipping:     Faults{DeclineCustomers: []string{"c-far"}},
		}, BrokenApplyDeclines)})
		ctx := t.Context()
		for range 2 {
			_, err := b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "c-bad", AmountCents: 100})
			requireProviderError(t, err, http.StatusPaymentRequired, CodeCardDeclined)
			require.True(t, IsDecline(err))
			_, err = b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o2:reserve", OrderID: "o2", Items: []Item{{SKU: "gone", Qty: 1}}})
			requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
			_, err = b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o3:reserve", OrderID: "o3", Items: []Item{{SKU: "few", Qty: 3}}})
			requireProviderError(t, err, http.StatusConflict, CodeOutOfStock)
			_, err = b.set.Shipping.Ship(ctx, ShipRequest{IdempotencyKey: "o4:ship", OrderID: "o4", CustomerID: "c-far"})
			requireProviderError(t, err, http.StatusUnprocessableEntity, CodeUndeliverable)
		}
		// Each decline applied once: a repeat answers the stored decline.
		require.Len(t, b.applied(t, OpCharge, "o1"), 1)
		require.Equal(t, int64(100), b.applied(t, OpCharge, "o1")[0].AmountCents)
		require.Len(t, b.applied(t, OpReserve, "o2"), 1)
		require.Len(t, b.applied(t, OpReserve, "o3"), 1)
		require.Len(t, b.applied(t, OpShip, "o4"), 1)
		available, _, err := b.ledger.Stock(ctx, "few")
		require.NoError(t, err)
		require.Zero(t, available, "what there was is taken, and no more")

		// A call that is not declined is served as usual.
		_, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o5:charge", OrderID: "o5", CustomerID: "c-ok", AmountCents: 1})
		require.NoError(t, err)
		require.Len(t, b.all(t, ProviderPayment), 2)
	})
}

// drop-compensations: refunds and releases answer success and apply
// nothing.
func TestSimulatorBrokenDropCompensations(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: brokenAll(SimConfig{InitialStock: 10}, BrokenDropCompensations)})
		ctx := t.Context()
		res, err := opCall(ctx, b.set, OpReserve, "o1", "")
		require.NoError(t, err)
		txn, err := opCall(ctx, b.set, OpCharge, "o1", "")
		require.NoError(t, err)
		_, err = opCall(ctx, b.set, OpRelease, "o1", res)
		require.NoError(t, err)
		ref, err := opCall(ctx, b.set, OpRefund, "o1", txn)
		require.NoError(t, err)
		require.NotEmpty(t, ref, "the refund claims success")
		_, err = opCall(ctx, b.set, OpCharge, "o2", "")
		require.NoError(t, err)
		byKey, err := opCall(ctx, b.set, OpRefund, "o2", "")
		require.NoError(t, err)
		require.NotEmpty(t, byKey, "a refund by key claims success too")
		require.Empty(t, b.applied(t, OpRefund, "o2"))

		require.Empty(t, b.applied(t, OpRelease, "o1"))
		require.Empty(t, b.applied(t, OpRefund, "o1"))
		available, _, err := b.ledger.Stock(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, 9, available, "the stock was not returned")

		// Once the provider is mended, the transaction was never refunded.
		require.NoError(t, b.sim.SetFaults(ProviderPayment, Faults{}))
		ref2, err := b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund:2", OrderID: "o1", TransactionID: txn, AmountCents: 100})
		require.NoError(t, err)
		require.NotEqual(t, ref, ref2)
		require.Len(t, b.applied(t, OpRefund, "o1"), 1)
	})
}

func TestFaultsValidateRatesHoldAndModes(t *testing.T) {
	t.Parallel()
	require.NoError(t, Faults{Broken: []string{BrokenIgnoreKeys, BrokenApplyDeclines, BrokenDropCompensations}}.Validate())
	err := Faults{Broken: []string{BrokenIgnoreKeys, "lose-parcels"}}.Validate()
	require.ErrorContains(t, err, "Faults.Broken")
	require.ErrorContains(t, err, `"lose-parcels"`)
	require.ErrorContains(t, SimConfig{Payment: Faults{Broken: []string{"x"}}}.Validate(), "SimConfig.Payment")
	for _, bad := range []Faults{
		{InProgressRate: 1.1}, {InProgressRate: -0.1}, {StrayRate: 2}, {InProgressHold: -time.Second},
	} {
		require.Error(t, bad.Validate(), "%+v", bad)
	}

	// NewSimulator keeps the known modes only, each once, and forces the
	// new rates into range.
	s := NewSimulator(nil, SimConfig{Shipping: Faults{
		Broken:         []string{"x", BrokenApplyDeclines, BrokenApplyDeclines},
		InProgressRate: 5, StrayRate: -1, InProgressHold: -time.Second,
	}})
	f, err := s.Faults(ProviderShipping)
	require.NoError(t, err)
	require.Equal(t, []string{BrokenApplyDeclines}, f.Broken)
	require.Equal(t, 1.0, f.InProgressRate)
	require.Zero(t, f.StrayRate)
	require.Equal(t, DefaultInProgressHold, f.InProgressHold)
	require.ErrorContains(t, s.SetFaults(ProviderShipping, Faults{Broken: []string{"x"}}), "Faults.Broken")
}
