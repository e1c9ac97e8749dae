package statemachine_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/statemachine"
)

// The DOT diagram has every state and one edge per event and source, like
// the mermaid one.
func TestDOT(t *testing.T) {
	t.Parallel()
	for _, d := range statemachine.NewOrderRegistry().All() {
		dot := d.DOT()
		require.True(t, strings.HasPrefix(dot, `digraph "order v`), dot)
		require.True(t, strings.HasSuffix(dot, "}\n"))
		require.Equal(t, dot, d.DOT(), "stable")
		for _, s := range d.States {
			require.Contains(t, dot, `"`+s.Name+`" [label=`)
		}
		edges := 0
		for _, ev := range d.Events {
			for _, src := range ev.Src {
				require.Contains(t, dot, `"`+src+`" -> "`+ev.Dst+`" [label="`+ev.Name+`"];`)
				edges++
			}
		}
		require.Len(t, regexp.MustCompile(`\[label="[a-z_]+"\];`).FindAllString(dot, -1), edges)
		for _, s := range d.TerminalStates() {
			require.Regexp(t, `"`+s+`" \[label="[^"]*", peripheries=2\]`, dot)
		}
		require.Contains(t, dot, `"[*]" -> "`+d.Initial+`";`)
	}
}
