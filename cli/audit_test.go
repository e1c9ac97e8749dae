package cli

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
)

func TestAuditCommand(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, rd *redistest.Instance) {
		r := run("audit", "--redis-url", rd.URL)
		require.Equal(t, ExitOK, r.code, "stderr: %s", r.stderr)
		require.Contains(t, r.stdout, "orders: 0 map[]\n")
		require.Contains(t, r.stdout, "violations: 0\n")

		// A charge for an order that does not exist.
		entry, err := json.Marshal(providers.LedgerEntry{Provider: providers.ProviderPayment, Op: providers.OpCharge,
			Key: "ghost:charge", OrderID: "ghost", ID: "txn_1", AmountCents: 100, Currency: "USD"})
		require.NoError(t, err)
		require.NoError(t, rd.Client(t).RPush(t.Context(), "{sim:payment}:ledger:order:ghost", entry).Err())

		r = run("audit", "--redis-url", rd.URL)
		require.Equal(t, ExitError, r.code, "stdout: %s", r.stdout)
		require.Contains(t, r.stdout, "violation: "+audit.RuleOrphan+" order ghost: ")
		require.Contains(t, r.stdout, "violations: 1\n")
		require.Contains(t, r.stderr, "the audit found violations")

		r = run("audit", "--json", "--redis-url", rd.URL)
		require.Equal(t, ExitError, r.code)
		var rep audit.Report
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), "stdout: %s", r.stdout)
		require.Len(t, rep.Violations, 1)
		require.Equal(t, audit.RuleOrphan, rep.Violations[0].Rule)
		require.Equal(t, map[string]int{"charge": 1}, rep.Effects)
	})
}
