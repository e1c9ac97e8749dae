package statemachine_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/statemachine"
)

// FuzzOrderWorkflowEvents fires a sequence of events, chosen by the fuzz
// bytes, from the initial state of the order workflow v1, through
// Definition.Destination and, in step, through a fresh looplab FSM. A byte
// below 0x80 fires one of the events the current state allows; a byte from
// 0x80 fires any event of the definition, which the state may refuse.
//
// Properties: every reached state is declared; from every non-terminal state
// a terminal state is reachable; once a compensation state is entered, every
// path ends failed or cancelled, never completed; terminal states accept no
// event; the definition and the FSM agree on every step.
func FuzzOrderWorkflowEvents(f *testing.F) {
	// EventsFrom is sorted: pending [cancel start], reserving [cancel
	// reserve_failed reserve_unsettled reserved], charging [cancel
	// charge_failed charge_unsettled charged], shipping [ship_failed shipped],
	// refunding [refunded], releasing [release_cancelled released].
	f.Add([]byte{})
	f.Add([]byte{1, 3, 3, 1})                   // start, reserved, charged, shipped: completed
	f.Add([]byte{1, 3, 3, 1, 0x80, 0x8c})       // and events fired at completed
	f.Add([]byte{0x80, 0x81, 0x8c, 0x89})       // arbitrary events from pending
	f.Add([]byte{0})                            // cancel while pending
	f.Add([]byte{1, 0, 1})                      // cancel while reserving, released: failed
	f.Add([]byte{1, 3, 2, 0, 0})                // charge unsettled, refunded, release_cancelled
	f.Add([]byte{1, 3, 3, 0, 0x84, 0, 1, 0x85}) // ship failed, compensation, refused events

	def, err := statemachine.NewOrderRegistry().Get(statemachine.OrderWorkflow, 1)
	require.NoError(f, err)
	allEvents := eventNames(def)
	require.NotEmpty(f, allEvents)

	// Facts about the graph, computed once by plain search over the table.
	reach := map[string]map[string]bool{}
	for _, s := range def.States {
		reach[s.Name] = reachable(f, def, s.Name)
	}
	compensating := func(name string) bool {
		s, ok := def.State(name)
		return ok && s.Compensation
	}
	require.True(f, compensating(statemachine.OrderRefunding))
	require.True(f, compensating(statemachine.OrderReleasing))

	f.Fuzz(func(t *testing.T, choices []byte) {
		fsm := def.NewFSM(def.Initial)
		cur := def.Initial
		enteredCompensation := false
		visit := func(name string) {
			st, ok := def.State(name)
			require.True(t, ok, "state %q is not declared", name)
			require.Equal(t, name, fsm.Current(), "the FSM agrees on the state")
			if compensating(name) {
				enteredCompensation = true
			}
			if enteredCompensation {
				require.NotEqual(t, statemachine.OrderCompleted, name, "completed after compensation began")
				require.True(t, compensating(name) || name == statemachine.OrderFailed || name == statemachine.OrderCancelled,
					"state %q after compensation began", name)
			}
			if st.Terminal() {
				require.Empty(t, def.EventsFrom(name), "terminal state %q has events", name)
				for _, ev := range allEvents {
					_, err := def.Destination(name, ev)
					require.Error(t, err, "terminal %q accepts %q", name, ev)
					require.False(t, fsm.Can(ev), "FSM: terminal %q accepts %q", name, ev)
				}
				return
			}
			require.Equal(t, statemachine.StatusRunning, st.Status)
			require.True(t, reachesTerminal(def, reach[name]), "no terminal state reachable from %q", name)
			if compensating(name) {
				// Every path from here ends failed or cancelled: nothing
				// outside compensation is reachable, and compensation has no
				// cycle, so every path ends.
				for s := range reach[name] {
					require.True(t, compensating(s) || s == statemachine.OrderFailed || s == statemachine.OrderCancelled,
						"%q reachable from compensation state %q", s, name)
				}
				require.False(t, onCycle(reach, name), "a cycle is reachable from compensation state %q", name)
			}
			// The definition and the FSM offer the same events.
			avail := fsm.AvailableTransitions()
			slices.Sort(avail)
			require.Equal(t, def.EventsFrom(name), avail)
		}
		visit(cur)
		for _, c := range choices {
			var ev string
			if allowed := def.EventsFrom(cur); c < 0x80 && len(allowed) > 0 {
				ev = allowed[int(c)%len(allowed)]
			} else {
				ev = allEvents[int(c)%len(allEvents)]
			}
			dst, derr := def.Destination(cur, ev)
			ferr := fsm.Event(context.Background(), ev)
			if derr != nil {
				var ite *statemachine.InvalidTransitionError
				require.ErrorAs(t, derr, &ite)
				require.Error(t, ferr, "the FSM fired %q from %q, the definition refused it", ev, cur)
				require.Equal(t, cur, fsm.Current(), "a refused event leaves the state")
				continue
			}
			require.NoError(t, ferr, "the definition fired %q from %q, the FSM refused it", ev, cur)
			require.NotEqual(t, cur, dst, "no self-transitions")
			cur = dst
			visit(cur)
		}
	})
}

// eventNames lists every event of the definition once, sorted.
func eventNames(d *statemachine.Definition) []string {
	var out []string
	for _, e := range d.Events {
		if !slices.Contains(out, e.Name) {
			out = append(out, e.Name)
		}
	}
	slices.Sort(out)
	return out
}

// reachable returns the states reachable from s in one or more events.
func reachable(t testing.TB, d *statemachine.Definition, s string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	queue := []string{s}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, ev := range d.EventsFrom(cur) {
			dst, err := d.Destination(cur, ev)
			require.NoError(t, err)
			if !seen[dst] {
				seen[dst] = true
				queue = append(queue, dst)
			}
		}
	}
	return seen
}

func reachesTerminal(d *statemachine.Definition, reach map[string]bool) bool {
	for s := range reach {
		if st, ok := d.State(s); ok && st.Terminal() {
			return true
		}
	}
	return false
}

// onCycle reports whether s, or a state reachable from it, can reach
// itself: then a path from s need not end.
func onCycle(reach map[string]map[string]bool, s string) bool {
	if reach[s][s] {
		return true
	}
	for r := range reach[s] {
		if reach[r][r] {
			return true
		}
	}
	return false
}
