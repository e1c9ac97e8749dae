package statemachine

import (
	"fmt"
	"slices"
	"strings"
)

// DOT renders the definition as a Graphviz digraph (`dot -Tsvg`), the
// counterpart of Mermaid: one edge per event and source state, labelled
// with the event, the initial state marked by an arrow from a point, the
// terminal states drawn with a double border, and each state's status in
// its label. The output depends only on the definition.
func (d *Definition) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n", fmt.Sprintf("%s v%d", d.Name, d.Version))
	b.WriteString("    rankdir=LR;\n")
	b.WriteString("    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n")
	b.WriteString("    edge [fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("    \"[*]\" [shape=point];\n")
	terminal := d.TerminalStates()
	for _, s := range d.States {
		attrs := fmt.Sprintf("label=%q", s.Name+"\n"+string(s.Status))
		if slices.Contains(terminal, s.Name) {
			attrs += ", peripheries=2"
		}
		fmt.Fprintf(&b, "    %q [%s];\n", s.Name, attrs)
	}
	fmt.Fprintf(&b, "    \"[*]\" -> %q;\n", d.Initial)
	for _, ev := range d.Events {
		for _, src := range ev.Src {
			fmt.Fprintf(&b, "    %q -> %q [label=%q];\n", src, ev.Dst, ev.Name)
		}
	}
	b.WriteString("}\n")
	return b.String()
}
