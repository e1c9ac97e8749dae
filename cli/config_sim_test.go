package cli

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/providers"
)

// The simulator's fault flags reach its config, per provider.
func TestSimFlags(t *testing.T) {
	t.Parallel()
	parse := func(args ...string) (providers.SimConfig, error) {
		var s simFlags
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		s.register(fs)
		require.NoError(t, fs.Parse(args))
		return s.config()
	}

	c, err := parse()
	require.NoError(t, err)
	require.Equal(t, providers.DefaultInProgressHold, c.Payment.InProgressHold)
	require.Zero(t, c.Payment.InProgressRate)
	require.Empty(t, c.Payment.Broken)

	c, err = parse(
		"--payment-in-progress-rate", "0.25", "--payment-in-progress-hold", "7s",
		"--inventory-stray-rate", "0.5", "--shipping-broken", "ignore-keys, drop-compensations",
		"--payment-broken", "apply-declines",
	)
	require.NoError(t, err)
	require.Equal(t, 0.25, c.Payment.InProgressRate)
	require.Equal(t, 7*time.Second, c.Payment.InProgressHold)
	require.Equal(t, 0.5, c.Inventory.StrayRate)
	require.Zero(t, c.Payment.StrayRate)
	require.Equal(t, []string{providers.BrokenIgnoreKeys, providers.BrokenDropCompensations}, c.Shipping.Broken)
	require.Equal(t, []string{providers.BrokenApplyDeclines}, c.Payment.Broken)

	_, err = parse("--inventory-broken", "sometimes")
	require.ErrorContains(t, err, `unknown mode "sometimes"`)
	require.ErrorAs(t, err, new(usageError))
}

// The v2 knobs: the risk agent's rules and faults, warehouses out of stock,
// and the duration of long-running shipments.
func TestSimFlagsV2(t *testing.T) {
	t.Parallel()
	parse := func(args ...string) (providers.SimConfig, error) {
		var s simFlags
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		s.register(fs)
		if err := fs.Parse(args); err != nil {
			return providers.SimConfig{}, err
		}
		return s.config()
	}

	c, err := parse()
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, c.Shipping.ShipmentDuration, "shipments take 3s by default")
	require.Zero(t, c.Payment.ShipmentDuration)
	require.Empty(t, c.Risk.RejectCustomers)
	require.Zero(t, c.Risk.ReviewAboveCents)

	c, err = parse(
		"--risk-review-customers", "c1, c2", "--risk-reject-customers", "c3",
		"--risk-review-above", "10000", "--risk-reject-above", "50000",
		"--risk-failure-rate", "0.2", "--risk-latency", "5ms", "--risk-in-progress-rate", "0.1", "--risk-stray-rate", "0.3",
		"--inventory-out-of-stock-warehouses", "east,west", "--shipping-duration", "0",
	)
	require.NoError(t, err)
	require.Equal(t, []string{"c1", "c2"}, c.Risk.ReviewCustomers)
	require.Equal(t, []string{"c3"}, c.Risk.RejectCustomers)
	require.Equal(t, int64(10000), c.Risk.ReviewAboveCents)
	require.Equal(t, int64(50000), c.Risk.RejectAboveCents)
	require.Equal(t, 0.2, c.Risk.FailureRate)
	require.Equal(t, 5*time.Millisecond, c.Risk.Latency)
	require.Equal(t, 0.1, c.Risk.InProgressRate)
	require.Equal(t, 0.3, c.Risk.StrayRate)
	require.Zero(t, c.Payment.FailureRate)
	require.Equal(t, []string{"east", "west"}, c.Inventory.OutOfStockWarehouses)
	require.Zero(t, c.Shipping.ShipmentDuration, "0 ships at once")

	_, err = parse("--risk-reject-above", "-1")
	require.ErrorContains(t, err, "RejectAboveCents")
	require.ErrorAs(t, err, new(usageError))
	_, err = parse("--shipping-duration", "-1s")
	require.ErrorContains(t, err, "ShipmentDuration")
	_, err = parse("--risk-decline-customers", "c1")
	require.ErrorContains(t, err, "flag provided but not defined", "the agent has no decline")
}

func TestProviderFlagsRiskURL(t *testing.T) {
	t.Parallel()
	var p providerFlags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p.register(fs)
	require.NoError(t, fs.Parse([]string{"--risk-url", "http://127.0.0.1:1/risk"}))
	require.Equal(t, "http://127.0.0.1:1/risk", p.config().RiskURL)
}

// The v2 provider flags exist, with their environment variables, on every
// command that takes them.
func TestProviderFlagsV2Table(t *testing.T) {
	t.Parallel()
	for _, row := range []struct {
		flag, env string
		commands  []string
	}{
		{"risk-url", "ORDERFLOW_RISK_URL", []string{"worker", "dev"}},
		{"risk-review-customers", "ORDERFLOW_RISK_REVIEW_CUSTOMERS", []string{"sim", "dev"}},
		{"risk-reject-customers", "ORDERFLOW_RISK_REJECT_CUSTOMERS", []string{"sim", "dev"}},
		{"risk-review-above", "ORDERFLOW_RISK_REVIEW_ABOVE", []string{"sim", "dev"}},
		{"risk-reject-above", "ORDERFLOW_RISK_REJECT_ABOVE", []string{"sim", "dev"}},
		{"risk-failure-rate", "ORDERFLOW_RISK_FAILURE_RATE", []string{"sim", "dev"}},
		{"inventory-out-of-stock-warehouses", "ORDERFLOW_INVENTORY_OUT_OF_STOCK_WAREHOUSES", []string{"sim", "dev"}},
		{"shipping-duration", "ORDERFLOW_SHIPPING_DURATION", []string{"sim", "dev"}},
	} {
		for _, cmd := range row.commands {
			env, _ := helpFlags(t, cmd)
			require.Equal(t, row.env, env[row.flag], "%s --%s", cmd, row.flag)
		}
	}
}
