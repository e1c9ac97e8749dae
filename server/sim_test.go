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
		for _, base := range []string{cfg.InventoryURL, cfg.PaymentURL, cfg.ShippingURL} {
			require.Contains(t, []string{p.URL() + "/inventory", p.URL() + "/payment", p.URL() + "/shipping"}, base)
			get(t, base+"/faults")
			get(t, base+"/ledger")
		}
		require.NotEqual(t, cfg.InventoryURL, cfg.PaymentURL)
		require.NotEqual(t, cfg.PaymentURL, cfg.ShippingURL)
	})
}

func TestStartSimRefusesBadFaults(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	_, err := server.StartSim(r.Client(t), "127.0.0.1:0", providers.SimConfig{Payment: providers.Faults{FailureRate: 2}}, discard)
	require.ErrorContains(t, err, "FailureRate")
}
