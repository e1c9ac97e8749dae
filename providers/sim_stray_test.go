package providers

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// Stray answers (401, 404) reach every mutating call, compensations
// included, apply nothing, store nothing, and are unexpected to the client:
// never a decline.
func TestSimulatorStrayAnswers(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		stray := Faults{StrayRate: 1}
		b := setupSim(t, r, simOpts{cfg: SimConfig{Inventory: stray, Payment: stray, Shipping: stray, Risk: stray, InitialStock: 10, Seed: 42}})
		clean := setupSim(t, r, simOpts{cfg: SimConfig{InitialStock: 10}})
		ctx := t.Context()
		// What the compensations refer to, made where nothing strays.
		res, err := opCall(ctx, clean.set, OpReserve, "o1", "")
		require.NoError(t, err)
		txn, err := opCall(ctx, clean.set, OpCharge, "o1", "")
		require.NoError(t, err)
		refs := map[string]string{OpRelease: res, OpRefund: txn, OpShip: res}

		seen := map[int]int{}
		for _, o := range allOps {
			for range 8 {
				_, err := opCall(ctx, b.set, o.op, "o2", refs[o.op])
				var pe *Error
				require.ErrorAs(t, err, &pe, o.op)
				switch pe.Status {
				case http.StatusUnauthorized:
					require.Equal(t, CodeUnauthorized, pe.Code)
				case http.StatusNotFound:
					require.Equal(t, CodeNotFound, pe.Code)
				default:
					t.Fatalf("%s: stray answer %v", o.op, err)
				}
				seen[pe.Status]++
				requireClass(t, classUnexpected, err, o.op)
			}
		}
		require.Positive(t, seen[http.StatusUnauthorized], "both strays are sent")
		require.Positive(t, seen[http.StatusNotFound], "both strays are sent")
		for _, p := range providerNames {
			require.Len(t, b.all(t, p), map[string]int{ProviderInventory: 1, ProviderPayment: 1, ProviderShipping: 0}[p],
				"%s: only the clean calls applied", p)
		}
		available, _, err := b.ledger.Stock(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, 9, available, "the reservation was not released")

		// Nothing was stored under the keys: once the strays stop, each
		// call applies.
		for _, p := range providerNames {
			require.NoError(t, b.sim.SetFaults(p, Faults{}))
		}
		for _, o := range allOps {
			_, err := opCall(ctx, b.set, o.op, "o2", refs[o.op])
			require.NoError(t, err, o.op)
		}
		require.Len(t, b.all(t, ProviderInventory), 3, "reserve o1, reserve o2, release o1's")
		require.Len(t, b.all(t, ProviderPayment), 3, "charge o1, charge o2, refund o1's")
		require.Len(t, b.all(t, ProviderShipping), 1)
		require.Len(t, b.all(t, ProviderRisk), 1)
	})
}
