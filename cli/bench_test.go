package cli

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchFlags checks that bad steady-load flags are usage errors, found
// before anything starts.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bench", "--soak", "--rate", "0"},
		{"bench", "--soak", "--workers", "0"},
		{"bench", "--soak", "--lease", "10ms"},
		{"bench", "--duration", "-1s"},
		{"bench", "--provider-latency", "0"},
		{"bench-worker", "--wake-workers", "x"},
	} {
		var out, errOut bytes.Buffer
		require.Equal(t, ExitUsage, Main(context.Background(), args, &out, &errOut), "%v: %s", args, errOut.String())
	}
}
