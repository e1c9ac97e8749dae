package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// TestRedisRestartLosesNothing stops Redis while an order is in flight. The
// API must answer 503 with Retry-After (never 500) and report not ready; once
// Redis is back, the order in flight finishes with one charge and new orders
// are accepted again. The real server runs with appendfsync always, so a
// restart loses nothing that was acknowledged.
func TestRedisRestartLosesNothing(t *testing.T) {
	t.Parallel()
	for _, backend := range redistest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			t.Parallel()
			r := redistest.NewWith(t, backend, redistest.Options{AppendFsyncAlways: true})
			b := setup(t, r, options{sim: providers.SimConfig{
				Payment: providers.Faults{Latency: 400 * time.Millisecond},
			}})
			b.post(t, order("outage-1", "cust-1"))
			b.waitState(t, "outage-1", settle, statemachine.OrderCharging)

			r.Stop()
			res := b.do(t, http.MethodPost, "/v1/orders", order("outage-2", "cust-1"))
			require.Equal(t, http.StatusServiceUnavailable, res.status, "body: %s", res.body)
			require.NotEmpty(t, res.header.Get("Retry-After"))
			require.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
			ready := b.do(t, http.MethodGet, "/readyz", nil)
			require.Equal(t, http.StatusServiceUnavailable, ready.status)
			require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/healthz", nil).status)
			get := b.do(t, http.MethodGet, "/v1/orders/outage-1", nil)
			require.Equal(t, http.StatusServiceUnavailable, get.status)
			// The outage lasts long enough for the charge in flight to end
			// while Redis is away: its result cannot be recorded.
			time.Sleep(500 * time.Millisecond)

			r.Start(t)
			waitFor(t, settle, "readiness", func() bool { return b.do(t, http.MethodGet, "/readyz", nil).status == http.StatusOK })
			b.waitState(t, "outage-1", 30*time.Second, statemachine.OrderCompleted)
			b.requireEffects(t, "outage-1", map[string]int{"reserve": 1, "charge": 1, "ship": 1})

			// The order refused during the outage can simply be sent again.
			b.post(t, order("outage-2", "cust-1"))
			b.waitState(t, "outage-2", settle, statemachine.OrderCompleted)
			b.requireEffects(t, "outage-2", map[string]int{"reserve": 1, "charge": 1, "ship": 1})
		})
	}
}
