package server_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

func TestStartSim(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		p, err := server.StartSim(r.Client(t), "127.0.0.1:0", providers.SimConfig{}, discard)
		require.NoError(t, err)
		t.Cleanup(func() { shutdown(t, p.Shutdown) })
		require.NotNil(t, p.Simulator())

		get(t, p.URL()+"/healthz")
		cfg := p.HTTPConfig()
		require.Equal(t, p.URL()+"/risk", cfg.RiskURL)
		for _, base := range []string{cfg.InventoryURL, cfg.PaymentURL, cfg.ShippingURL, cfg.RiskURL} {
			require.Contains(t, []string{p.URL() + "/inventory", p.URL() + "/payment", p.URL() + "/shipping", p.URL() + "/risk"}, base)
			get(t, base+"/faults")
			get(t, base+"/ledger")
		}
		require.NotEqual(t, cfg.InventoryURL, cfg.PaymentURL)
		require.NotEqual(t, cfg.PaymentURL, cfg.ShippingURL)

		// The clients it configures reach the risk agent.
		set, err := providers.NewHTTP(cfg)
		require.NoError(t, err)
		a, err := set.Risk.Assess(t.Context(), providers.AssessRequest{IdempotencyKey: "o1:assess", OrderID: "o1", CustomerID: "c1"})
		require.NoError(t, err)
		require.Equal(t, providers.DecisionApprove, a.Decision)
	})
}

func TestStartSimRefusesBadFaults(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	_, err := server.StartSim(r.Client(t), "127.0.0.1:0", providers.SimConfig{Payment: providers.Faults{FailureRate: 2}}, discard)
	require.ErrorContains(t, err, "FailureRate")
}
