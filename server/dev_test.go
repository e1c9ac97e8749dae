package server_test

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

// startDev starts `orderflow dev` with its API on a free port. stop shuts
// it down and requires success; it runs at the end of the test unless the
// test ran it.
func startDev(t *testing.T, cfg server.DevConfig) (d *server.Dev, stop func()) {
	t.Helper()
	cfg.API.Listen, cfg.Logger = "127.0.0.1:0", discard
	cfg.Worker.ShutdownTimeout = cmp.Or(cfg.Worker.ShutdownTimeout, time.Second)
	d, err := server.StartDev(cfg)
	require.NoError(t, err)
	var once sync.Once
	stop = func() { once.Do(func() { shutdown(t, d.Shutdown) }) }
	t.Cleanup(stop)
	return d, stop
}

// urlLabels returns the label of each line of URLs().
func urlLabels(d *server.Dev) []string {
	var out []string
	for _, line := range d.URLs() {
		label, _, _ := strings.Cut(line, ":")
		out = append(out, label)
	}
	return out
}

func TestStartDevEmbedded(t *testing.T) {
	t.Parallel()
	d, stop := startDev(t, server.DevConfig{})

	require.Equal(t, []string{"api", "dashboard", "asynqmon", "metrics", "providers", "redis"}, urlLabels(d))
	for _, line := range d.URLs()[:5] {
		require.Contains(t, line, "http://127.0.0.1:")
	}
	require.Contains(t, d.URLs()[1], d.APIURL()+"/ui/")
	require.Contains(t, d.URLs()[5], "redis://127.0.0.1:")
	get(t, d.APIURL()+"/healthz")
	get(t, d.APIURL()+"/ui/")
	get(t, d.APIURL()+"/metrics")
	get(t, d.APIURL()+"/monitor/")
	get(t, d.SimURL()+"/healthz")
	require.NoError(t, d.Redis().Client.Ping(context.Background()).Err())

	resp := do(t, http.MethodPost, d.APIURL()+"/v1/orders",
		`{"order_id":"dev-1","customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}]}`)
	require.Equal(t, http.StatusAccepted, resp.Code, resp.Body)

	var order struct {
		Status, State  string
		TrackingNumber string `json:"tracking_number"`
		AmountCents    int64  `json:"amount_cents"`
	}
	deadline := time.After(stopTimeout)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		require.NoError(t, json.Unmarshal([]byte(get(t, d.APIURL()+"/v1/orders/dev-1").Body), &order))
		if order.Status == "completed" {
			break
		}
		require.Equal(t, "running", order.Status, "state %s", order.State)
		select {
		case <-deadline:
			t.Fatalf("the order is still %s after %s", order.State, stopTimeout)
		case <-poll.C:
		}
	}
	require.NotEmpty(t, order.TrackingNumber)
	require.Equal(t, int64(4998), order.AmountCents)

	stop()
	_, err := http.Get(d.APIURL() + "/healthz")
	require.Error(t, err, "the API is stopped")
}

func TestStartDevExternalRedis(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		d, _ := startDev(t, server.DevConfig{RedisURL: r.URL})
		require.Equal(t, []string{"api", "dashboard", "asynqmon", "metrics", "providers"}, urlLabels(d), "no embedded redis")
		get(t, d.APIURL()+"/readyz")
	})
}

func TestStartDevExternalProviders(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	d, _ := startDev(t, server.DevConfig{RedisURL: r.URL, Providers: providers.HTTPConfig{
		InventoryURL: "http://127.0.0.1:1/inventory", PaymentURL: "http://127.0.0.1:1/payment", ShippingURL: "http://127.0.0.1:1/shipping",
	}})
	require.Empty(t, d.SimURL(), "no simulators")
	require.Equal(t, []string{"api", "dashboard", "asynqmon", "metrics"}, urlLabels(d))
}

func TestStartDevErrors(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]server.DevConfig{
		"bad redis URL": {RedisURL: "http://u:s3cret@host"},
		"bad faults":    {Sim: providers.SimConfig{Shipping: providers.Faults{Latency: -time.Second}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg.API.Listen, cfg.Logger = "127.0.0.1:0", discard
			_, err := server.StartDev(cfg)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}
