package cli

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/flowcontrol"
)

func parseFlow(t *testing.T, args ...string) (flowcontrol.Config, error) {
	t.Helper()
	var f flowFlags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs)
	require.NoError(t, parseFlags(fs, args))
	return f.config()
}

// Flow control is off unless a flag turns it on.
func TestFlowFlagsOffByDefault(t *testing.T) {
	t.Parallel()
	c, err := parseFlow(t)
	require.NoError(t, err)
	require.False(t, c.Enabled())
	require.Equal(t, flowcontrol.Config{}, c)
}

func TestFlowFlags(t *testing.T) {
	t.Parallel()
	c, err := parseFlow(t, "--payment-rps", "50", "--payment-burst", "10", "--inventory-rps", "20",
		"--limit", "charge:customer_id=1", "--limit", "ship:customer_id=2,reserve:sku=3",
		"--breaker-error-rate", "0.5", "--breaker-window", "20s", "--breaker-min-calls", "4")
	require.NoError(t, err)
	require.True(t, c.Enabled())
	require.Equal(t, map[string]flowcontrol.Rate{"payment": {PerSecond: 50, Burst: 10}, "inventory": {PerSecond: 20, Burst: 1}}, c.Rates)
	require.Equal(t, []flowcontrol.Limit{
		{Step: "charge", Field: "customer_id", Max: 1}, {Step: "ship", Field: "customer_id", Max: 2}, {Step: "reserve", Field: "sku", Max: 3},
	}, c.Limits)
	require.Equal(t, 0.5, c.Breaker.ErrorRate)
	require.Equal(t, 20*time.Second, c.Breaker.Window)
	require.Equal(t, 4, c.Breaker.MinCalls)

	c, err = parseFlow(t, "--flow-gate")
	require.NoError(t, err)
	require.True(t, c.Enabled())
	require.Empty(t, c.Rates)

	for _, bad := range [][]string{
		{"--payment-rps", "-1"}, {"--payment-burst", "0"}, {"--limit", "charge"}, {"--limit", "charge:customer_id=0"},
		{"--breaker-error-rate", "1.5"}, {"--breaker-window", "0s"},
	} {
		_, err := parseFlow(t, bad...)
		require.Error(t, err, "%v", bad)
		require.ErrorAs(t, err, new(usageError), "%v", bad)
	}
}

// ORDERFLOW_LIMIT holds several limits, comma-separated. (It sets the
// environment, so it does not run in parallel.)
func TestEnvLimit(t *testing.T) {
	t.Setenv("ORDERFLOW_LIMIT", "charge:customer_id=1, refund:customer_id=2")
	t.Setenv("ORDERFLOW_PAYMENT_RPS", "7")
	c, err := parseFlow(t)
	require.NoError(t, err)
	require.Equal(t, []flowcontrol.Limit{{Step: "charge", Field: "customer_id", Max: 1}, {Step: "refund", Field: "customer_id", Max: 2}}, c.Limits)
	require.Equal(t, 7, c.Rates["payment"].PerSecond)
}
