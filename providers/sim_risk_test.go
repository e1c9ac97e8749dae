package providers

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// riskCases are orders and the decisions the rules of riskTestFaults give
// them, for the simulator and InProcess alike.
var riskCases = []struct {
	name, customer string
	amount         int64
	want           string
	reason         string
}{
	{"no rule", "c-ok", 500, DecisionApprove, "no risk rule matched"},
	{"review customer", "c-watch", 500, DecisionReview, "customer c-watch is on the review list"},
	{"reject customer", "c-fraud", 500, DecisionReject, "customer c-fraud is on the reject list"},
	{"review amount", "c-ok", 10_001, DecisionReview, "amount_cents 10001 is above the review threshold 10000"},
	{"at the review threshold", "c-ok", 10_000, DecisionApprove, "no risk rule matched"},
	{"reject amount", "c-ok", 50_001, DecisionReject, "amount_cents 50001 is above the reject threshold 50000"},
	{"reject wins over a review customer", "c-watch", 60_000, DecisionReject, "amount_cents 60000 is above the reject threshold 50000"},
	{"a reject customer under the review amount", "c-fraud", 20_000, DecisionReject, "customer c-fraud is on the reject list"},
}

// riskTestFaults are the rules riskCases assume.
var riskTestFaults = Faults{
	ReviewCustomers: []string{"c-watch"}, RejectCustomers: []string{"c-fraud"},
	ReviewAboveCents: 10_000, RejectAboveCents: 50_000,
}

func assessReq(key, order, customer string, amount int64) AssessRequest {
	return AssessRequest{IdempotencyKey: key, OrderID: order, CustomerID: customer, AmountCents: amount, Currency: "EUR",
		Items: []Item{{SKU: "sku-1", Qty: 1}}}
}

func TestSimulatorRiskRules(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Risk: riskTestFaults}})
		for i, tc := range riskCases {
			order := "o" + string(rune('a'+i))
			a, err := b.set.Risk.Assess(t.Context(), assessReq(order+":assess", order, tc.customer, tc.amount))
			require.NoError(t, err, tc.name)
			require.Equal(t, Assessment{Decision: tc.want, Reason: tc.reason}, a, tc.name)
		}
		entries := b.all(t, ProviderRisk)
		require.Len(t, entries, len(riskCases), "one assess entry per key")
		for i, e := range entries {
			require.Equal(t, OpAssess, e.Op)
			require.Equal(t, riskCases[i].want, e.Decision)
			require.Equal(t, riskCases[i].amount, e.AmountCents)
		}

		// Without rules, everyone is approved.
		require.NoError(t, b.sim.SetFaults(ProviderRisk, Faults{}))
		a, err := b.set.Risk.Assess(t.Context(), assessReq("oz:assess", "oz", "c-fraud", 90_000))
		require.NoError(t, err)
		require.Equal(t, DecisionApprove, a.Decision)
	})
}

// The same key keeps its first decision, at every simulator on the Redis,
// whatever their rules; each key is assessed once in the ledger.
func TestSimulatorRiskSameKeySameDecision(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		strict := setupSim(t, r, simOpts{cfg: SimConfig{Risk: Faults{RejectCustomers: []string{"c1"}}}})
		lenient := setupSim(t, r, simOpts{})
		ctx := t.Context()

		first, err := strict.set.Risk.Assess(ctx, assessReq("o1:assess", "o1", "c1", 100))
		require.NoError(t, err)
		require.Equal(t, DecisionReject, first.Decision)
		for _, set := range []Set{lenient.set, strict.set, lenient.set} {
			again, err := set.Risk.Assess(ctx, assessReq("o1:assess", "o1", "c1", 100))
			require.NoError(t, err)
			require.Equal(t, first, again)
		}
		other, err := lenient.set.Risk.Assess(ctx, assessReq("o2:assess", "o2", "c1", 100))
		require.NoError(t, err)
		require.Equal(t, DecisionApprove, other.Decision, "a new key follows the rules of the simulator it reaches")

		entries, err := strict.ledger.ForOrder(ctx, "o1")
		require.NoError(t, err)
		require.Len(t, entries, 1)
		require.Equal(t, []string{ProviderRisk, OpAssess, "o1:assess", DecisionReject}, []string{entries[0].Provider, entries[0].Op, entries[0].Key, entries[0].Decision})

		// Assessments change nothing: a scan for orders with effects does
		// not meet them.
		var scanned []string
		require.NoError(t, strict.ledger.ScanOrders(ctx, func(id string) error { scanned = append(scanned, id); return nil }))
		require.Empty(t, scanned)

		status, body := strict.do(t, http.MethodGet, "/risk/ledger?order_id=o2", "", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, `"decision":"approve"`)
	})
}

// The agent takes the usual faults; none of its answers is a decline.
func TestSimulatorRiskFaults(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setupSim(t, r, simOpts{cfg: SimConfig{Risk: Faults{FailureRate: 1}}})
		ctx := t.Context()
		req := assessReq("o1:assess", "o1", "c1", 100)

		_, err := b.set.Risk.Assess(ctx, req)
		requireProviderError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
		require.True(t, IsAmbiguous(err))
		require.False(t, IsDecline(err))

		require.NoError(t, b.sim.SetFaults(ProviderRisk, Faults{StrayRate: 1}))
		_, err = b.set.Risk.Assess(ctx, req)
		require.True(t, IsUnexpected(err), "%v", err)
		require.Empty(t, b.all(t, ProviderRisk), "failures and strays decide nothing")

		// A lost answer: the decision is made and kept, the answer dropped.
		require.NoError(t, b.sim.SetFaults(ProviderRisk, Faults{TimeoutRate: 1, TimeoutHold: 1}))
		_, err = b.set.Risk.Assess(ctx, req)
		require.True(t, IsAmbiguous(err), "%v", err)
		require.NoError(t, b.sim.SetFaults(ProviderRisk, Faults{RejectCustomers: []string{"c1"}}))
		a, err := b.set.Risk.Assess(ctx, req)
		require.NoError(t, err)
		require.Equal(t, DecisionApprove, a.Decision, "the decision made before the rules changed")
		require.Len(t, b.all(t, ProviderRisk), 1)

		// Bad requests.
		status, _ := b.do(t, http.MethodPost, "/risk/assessments", "", `{"order_id":"o3"}`)
		require.Equal(t, http.StatusBadRequest, status, "no key")
		status, _ = b.do(t, http.MethodPost, "/risk/assessments", "o3:assess", `{"order_id":"o3","amount_cents":-1}`)
		require.Equal(t, http.StatusBadRequest, status)

		status, body := b.do(t, http.MethodPut, "/risk/faults", "", `{"reject_customers":["c9"],"review_above_cents":700}`)
		require.Equal(t, http.StatusOK, status, body)
		f, err := b.sim.Faults(ProviderRisk)
		require.NoError(t, err)
		require.Equal(t, []string{"c9"}, f.RejectCustomers)
		require.Equal(t, int64(700), f.ReviewAboveCents)
		status, _ = b.do(t, http.MethodPut, "/risk/faults", "", `{"reject_above_cents":-5}`)
		require.Equal(t, http.StatusBadRequest, status)
	})
}
