package statemachine

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite docs/state_machine.md")

// docPath is docs/state_machine.md, relative to this package.
const docPath = "../docs/state_machine.md"

func TestStateMachineDocIsCurrent(t *testing.T) {
	t.Parallel()
	want, err := Document(OrderV1(), OrderV2(OrderV2Options{}))
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile(docPath, []byte(want), 0o644))
		return
	}
	got, err := os.ReadFile(docPath)
	require.NoError(t, err, "run: go test ./statemachine -run TestStateMachineDocIsCurrent -update")
	if string(got) != want {
		require.Equal(t, want, string(got),
			"docs/state_machine.md is out of date; run: go test ./statemachine -run TestStateMachineDocIsCurrent -update")
	}
}

func TestMermaidListsEveryTransition(t *testing.T) {
	t.Parallel()
	for _, d := range []*Definition{compiledOrderV1(t), orderV2()} {
		t.Run(d.Key(), func(t *testing.T) {
			t.Parallel()
			require.NoError(t, NewRegistry().Register(d))
			out, err := d.Mermaid()
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			require.Equal(t, "stateDiagram-v2", lines[0])

			want := map[string]bool{"    [*] --> " + d.Initial: true}
			for _, e := range d.Events {
				for _, src := range e.Src {
					want[fmt.Sprintf("    %s --> %s: %s", src, e.Dst, e.Name)] = true
				}
			}
			for _, s := range d.TerminalStates() {
				want["    "+s+" --> [*]"] = true
			}
			require.ElementsMatch(t, mapsKeys(want), lines[1:], "one line per transition, the start and each terminal")
		})
	}
}

func TestDocument(t *testing.T) {
	t.Parallel()

	t.Run("every state and transition", func(t *testing.T) {
		t.Parallel()
		doc, err := Document(OrderV1(), orderV2())
		require.NoError(t, err)
		v1 := strings.Index(doc, "\n## order workflow, version 1\n")
		v2 := strings.Index(doc, "\n## order workflow, version 2\n")
		require.Positive(t, v1)
		require.Greater(t, v2, v1, "definitions appear in the order given")
		require.Contains(t, doc, "| state | status | step | queue | on success | on failure | on signal | meaning |\n")
		require.Equal(t, 2, strings.Count(doc, "```mermaid\n"))

		d := compiledOrderV1(t)
		section := doc[v1:v2]
		mermaid, err := d.Mermaid()
		require.NoError(t, err)
		require.Contains(t, section, "```mermaid\n"+mermaid+"```\n")
		for _, s := range d.States {
			require.Contains(t, section, "| `"+s.Name+"` | "+string(s.Status)+" |")
			require.Contains(t, section, cell(s.Doc)+" |\n")
		}
		require.Contains(t, section, "| `reserving` | running | `reserve` | `inventory` | `reserved` → `charging` | "+
			"`reserve_failed` → `failed`<br>when in doubt: `reserve_unsettled` → `refunding` | cancel: `cancel` → `refunding` |")
		require.Contains(t, doc[v2:], "approve: `approve` → `reserving`<br>reject: `reject` → `cancelled`", "signals are sorted")
	})

	t.Run("deterministic", func(t *testing.T) {
		t.Parallel()
		first, err := Document(orderV2())
		require.NoError(t, err)
		for range 20 {
			again, err := Document(orderV2())
			require.NoError(t, err)
			require.Equal(t, first, again)
		}
	})

	t.Run("does not touch the definition", func(t *testing.T) {
		t.Parallel()
		d := OrderV1()
		_, err := Document(d)
		require.NoError(t, err)
		_, ok := d.State(OrderPending)
		require.False(t, ok, "Document compiles a copy")
	})

	t.Run("invalid definition", func(t *testing.T) {
		t.Parallel()
		d := OrderV1()
		d.States[2].Doc = ""
		_, err := Document(d)
		require.ErrorContains(t, err, `documenting order/v1: order/v1: state "charging" is not documented`)
	})

	t.Run("escapes table cells", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, `a \| b &lt;id&gt; c`, cell("a | b <id>\nc"))
	})
}
