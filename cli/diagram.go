package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/statemachine"
)

// runDiagram is `orderflow diagram --version N [--format mermaid|dot]`: the
// state diagram of a version of the order workflow, from the registry this
// binary carries (no API, no Redis).
func runDiagram(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet("diagram", "Print the state diagram of a version of the order workflow, as mermaid or Graphviz DOT.", env.Stderr)
	version := fs.Int("version", 0, "the workflow version, such as 1 or 2 (required)")
	format := fs.String("format", "mermaid", "mermaid or dot")
	var wf workflowFlags
	wf.register(fs, false, true)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	if *version == 0 {
		return usageError{errors.New("--version is required")}
	}
	if *format != "mermaid" && *format != "dot" {
		return usageError{fmt.Errorf("--format must be mermaid or dot, got %q", *format)}
	}
	reg, err := wf.registry()
	if err != nil {
		return err
	}
	def, err := reg.Get(statemachine.OrderWorkflow, *version)
	if err != nil {
		return usageError{fmt.Errorf("--version %d: no such version of the order workflow", *version)}
	}
	out := def.DOT()
	if *format == "mermaid" {
		if out, err = def.Mermaid(); err != nil {
			return err
		}
	}
	_, err = fmt.Fprint(env.Stdout, out)
	return err
}
