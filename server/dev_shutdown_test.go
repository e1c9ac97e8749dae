package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// TestDevStopsWhileAShipmentIsFollowed stops `orderflow dev` while a v2
// order's shipment, which takes ten minutes, is being followed: the worker
// abandons the long step to another worker instead of waiting for the
// delivery, so the whole process stops within its shutdown timeout.
func TestDevStopsWhileAShipmentIsFollowed(t *testing.T) {
	t.Parallel()
	reg, err := statemachine.OrderRegistry(statemachine.OrderV2Options{}, 2)
	require.NoError(t, err)
	cfg := server.DevConfig{Sim: providers.SimConfig{Shipping: providers.Faults{ShipmentDuration: 10 * time.Minute}}}
	cfg.Worker.Registry = reg
	// Longer than the test waits: a worker that waited for running steps
	// to end, however long, would fail it.
	cfg.Worker.ShutdownTimeout = time.Minute
	d, stop := startDev(t, cfg)

	resp := do(t, http.MethodPost, d.APIURL()+"/v1/orders",
		`{"order_id":"ship-1","customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-ABC","qty":1,"unit_price_cents":100}]}`)
	require.Equal(t, http.StatusAccepted, resp.Code, resp.Body)
	require.Eventually(t, func() bool {
		var o struct {
			State    string
			Progress *struct{ Percent int }
		}
		require.NoError(t, json.Unmarshal([]byte(get(t, d.APIURL()+"/v1/orders/ship-1").Body), &o))
		return o.State == "shipping" && o.Progress != nil
	}, stopTimeout, 20*time.Millisecond, "the shipment is being followed")

	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("dev waits for the shipment to be delivered")
	}
}
