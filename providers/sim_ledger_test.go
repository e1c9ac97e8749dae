package providers

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// appendLedger writes entries as the simulator's scripts do, in one
// pipeline, so that a test can fill large ledgers fast.
func appendLedger(t *testing.T, rdb redis.UniversalClient, entries ...LedgerEntry) {
	t.Helper()
	pipe := rdb.Pipeline()
	for _, e := range entries {
		raw, err := e.marshal()
		require.NoError(t, err)
		k := keysOf(e.Provider)
		pipe.RPush(t.Context(), k.ledger(), raw)
		pipe.RPush(t.Context(), k.orderLedger(e.OrderID), raw)
	}
	_, err := pipe.Exec(t.Context())
	require.NoError(t, err)
}

// ledgerEntry returns the entry of op under the key <orderID>:<op>.
func ledgerEntry(provider, op, orderID string) LedgerEntry {
	return LedgerEntry{Provider: provider, Op: op, Key: orderID + ":" + op, OrderID: orderID, ID: op + "-" + orderID, At: time.Unix(1, 0).UTC()}
}

func TestLedgerForOrders(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rdb := r.Client(t)
		l := NewLedger(rdb)
		appendLedger(t, rdb,
			ledgerEntry(ProviderShipping, OpShip, "o1"),
			ledgerEntry(ProviderPayment, OpCharge, "o1"),
			ledgerEntry(ProviderInventory, OpReserve, "o1"),
			ledgerEntry(ProviderPayment, OpRefund, "o1"),
			ledgerEntry(ProviderPayment, OpCharge, "o2"),
		)

		got, err := l.ForOrders(t.Context(), []string{"o1", "o2", "o3", "o1"})
		require.NoError(t, err)
		require.Len(t, got, 3)
		for _, id := range []string{"o1", "o2", "o3"} {
			one, err := l.ForOrder(t.Context(), id)
			require.NoError(t, err)
			require.Equal(t, one, got[id], id)
		}
		var ops []string
		for _, e := range got["o1"] {
			ops = append(ops, e.Op)
		}
		require.Equal(t, []string{OpReserve, OpCharge, OpRefund, OpShip}, ops, "inventory, payment, shipping, each in order")
		require.NotNil(t, got["o3"])
		require.Empty(t, got["o3"])

		none, err := l.ForOrders(t.Context(), nil)
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

func TestLedgerScanOrders(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rdb := r.Client(t)
		l := NewLedger(rdb)
		// More orders than one SCAN step holds, spread over the providers
		// so that most orders have entries at several of them, and IDs
		// that MATCH would take for patterns.
		const n = 3*scanCount + 17
		var (
			entries []LedgerEntry
			want    []string
		)
		for i := range n {
			id := fmt.Sprintf("o%d", i)
			want = append(want, id)
			if i%2 == 0 {
				entries = append(entries, ledgerEntry(ProviderInventory, OpReserve, id))
			}
			if i%3 != 0 {
				entries = append(entries, ledgerEntry(ProviderPayment, OpCharge, id))
			}
			if i%2 != 0 || i%3 == 0 {
				entries = append(entries, ledgerEntry(ProviderShipping, OpShip, id))
			}
		}
		for _, id := range []string{"glob*[x]?", `back\slash`, "with:colon"} {
			want = append(want, id)
			entries = append(entries, ledgerEntry(ProviderPayment, OpCharge, id), ledgerEntry(ProviderShipping, OpShip, id))
		}
		appendLedger(t, rdb, entries...)

		var got []string
		require.NoError(t, l.ScanOrders(t.Context(), func(id string) error {
			got = append(got, id)
			return nil
		}))
		slices.Sort(got)
		slices.Sort(want)
		require.Equal(t, want, got, "every order once")

		// fn's error ends the scan.
		stop := errors.New("stop")
		calls := 0
		err := l.ScanOrders(t.Context(), func(string) error {
			calls++
			return stop
		})
		require.ErrorIs(t, err, stop)
		require.Equal(t, 1, calls)
	})
}

func TestLedgerScanOrdersEmpty(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		rdb := r.Client(t)
		// The provider-wide ledger is not an order's.
		require.NoError(t, rdb.RPush(t.Context(), keysOf(ProviderPayment).ledger(), "{}").Err())
		require.NoError(t, NewLedger(rdb).ScanOrders(t.Context(), func(id string) error {
			return fmt.Errorf("unexpected order %q", id)
		}))
	})
}

func TestGlobEscape(t *testing.T) {
	t.Parallel()
	require.Equal(t, `{sim:payment}:\\a\*b\?\[c\]`, globEscape(`{sim:payment}:\a*b?[c]`))
}
