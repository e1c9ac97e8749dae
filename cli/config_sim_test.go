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
