package statemachine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/looplab/fsm"
	"github.com/stretchr/testify/require"
)

// orderV1Table is OrderV1's transition table written out by hand: state ->
// event -> destination. Every pair missing here must be refused.
var orderV1Table = map[string]map[string]string{
	OrderPending: {
		"start":  OrderReserving,
		"cancel": OrderCancelled,
	},
	OrderReserving: {
		"reserved":          OrderCharging,
		"reserve_failed":    OrderFailed,
		"reserve_unsettled": OrderRefunding,
		"cancel":            OrderRefunding,
	},
	OrderCharging: {
		"charged":          OrderShipping,
		"charge_failed":    OrderReleasing,
		"charge_unsettled": OrderRefunding,
		"cancel":           OrderRefunding,
	},
	OrderShipping: {
		"shipped":     OrderCompleted,
		"ship_failed": OrderRefunding,
	},
	OrderRefunding: {
		"refunded": OrderReleasing,
	},
	OrderReleasing: {
		"released":          OrderFailed,
		"release_cancelled": OrderCancelled,
	},
	OrderCompleted: {},
	OrderFailed:    {},
	OrderCancelled: {},
}

// compiledOrderV1 returns OrderV1 as a registry hands it out: compiled.
func compiledOrderV1(t testing.TB) *Definition {
	t.Helper()
	d, err := NewOrderRegistry().Get(OrderWorkflow, 1)
	require.NoError(t, err)
	return d
}

// allEvents returns every event name d declares, sorted, plus one it does not.
func allEvents(d *Definition) []string {
	return append(d.eventNames(), "no_such_event")
}

// stateNames returns the declared state names in documentation order.
func stateNames(d *Definition) []string {
	names := make([]string, 0, len(d.States))
	for _, s := range d.States {
		names = append(names, s.Name)
	}
	return names
}

func TestOrderV1Destinations(t *testing.T) {
	t.Parallel()
	d := compiledOrderV1(t)
	require.ElementsMatch(t, stateNames(d), mapsKeys(orderV1Table), "the hand-written table covers every state")

	for _, state := range append(stateNames(d), "no_such_state") {
		for _, ev := range allEvents(d) {
			t.Run(state+"/"+ev, func(t *testing.T) {
				t.Parallel()
				got, err := d.Destination(state, ev)
				if want, ok := orderV1Table[state][ev]; ok {
					require.NoError(t, err)
					require.Equal(t, want, got)
					return
				}
				var invalid *InvalidTransitionError
				require.ErrorAs(t, err, &invalid)
				require.Equal(t, InvalidTransitionError{Definition: "order/v1", State: state, Event: ev}, *invalid)
				require.Empty(t, got)
			})
		}
	}
}

// TestOrderV1AgreesWithLooplab checks the derived table against a fresh
// looplab FSM for every (state, event) pair.
func TestOrderV1AgreesWithLooplab(t *testing.T) {
	t.Parallel()
	d := compiledOrderV1(t)
	for _, state := range stateNames(d) {
		// looplab returns AvailableTransitions in map order.
		require.Equal(t, sorted(d.EventsFrom(state)), sorted(d.NewFSM(state).AvailableTransitions()), "events from %s", state)
		require.Equal(t, sorted(mapsKeys(orderV1Table[state])), d.EventsFrom(state), "events from %s", state)

		for _, ev := range allEvents(d) {
			f := d.NewFSM(state)
			dst, err := d.Destination(state, ev)
			require.Equal(t, err == nil, f.Can(ev), "%s/%s: Can", state, ev)
			fireErr := f.Event(context.Background(), ev)
			if err != nil {
				require.Error(t, fireErr, "%s/%s: looplab fires what the table refuses", state, ev)
				require.Equal(t, state, f.Current())
				continue
			}
			require.NoError(t, fireErr, "%s/%s", state, ev)
			require.Equal(t, dst, f.Current(), "%s/%s", state, ev)
		}
	}
}

// reachable walks the table from start and returns the states reached
// (start included) and the (state, event) edges taken.
func reachable(d *Definition, start string) (states map[string]bool, edges map[[2]string]bool) {
	states, edges = map[string]bool{start: true}, map[[2]string]bool{}
	for queue := []string{start}; len(queue) > 0; queue = queue[1:] {
		for _, ev := range d.EventsFrom(queue[0]) {
			dst, _ := d.Destination(queue[0], ev)
			edges[[2]string{queue[0], ev}] = true
			if !states[dst] {
				states[dst] = true
				queue = append(queue, dst)
			}
		}
	}
	return states, edges
}

func TestOrderV1EveryStateReachesATerminal(t *testing.T) {
	t.Parallel()
	d := compiledOrderV1(t)
	terminals := d.TerminalStates()
	require.ElementsMatch(t, []string{OrderCompleted, OrderFailed, OrderCancelled}, terminals)
	for _, s := range d.States {
		states, _ := reachable(d, s.Name)
		require.True(t, slices.ContainsFunc(terminals, func(term string) bool { return states[term] }),
			"%s reaches no terminal state (it reaches %v)", s.Name, mapsKeys(states))
		if s.Terminal() {
			require.Empty(t, d.EventsFrom(s.Name), "terminal %s has outgoing events", s.Name)
		}
	}
	states, _ := reachable(d, d.Initial)
	require.ElementsMatch(t, stateNames(d), mapsKeys(states), "every state is reachable from %s", d.Initial)
}

func TestOrderV1CompensationIsReachable(t *testing.T) {
	t.Parallel()
	d := compiledOrderV1(t)
	_, edges := reachable(d, d.Initial)
	for _, ev := range []string{"reserve_unsettled", "charge_failed", "charge_unsettled", "ship_failed", "refunded", "released", "release_cancelled"} {
		require.True(t, slices.ContainsFunc(mapsKeys(orderV1Table), func(state string) bool { return edges[[2]string{state, ev}] }),
			"compensation event %s is not reachable from %s", ev, d.Initial)
	}
	for _, e := range d.Events {
		if e.Name != "cancel" {
			continue
		}
		for _, src := range e.Src {
			require.True(t, edges[[2]string{src, "cancel"}], "cancel from %s is not reachable from %s", src, d.Initial)
		}
	}
}

func TestOrderV1StatesAreDocumented(t *testing.T) {
	t.Parallel()
	for _, s := range OrderV1().States {
		require.NotEmpty(t, s.Doc, "state %s has no Doc", s.Name)
		require.True(t, s.Status.Valid(), "state %s", s.Name)
	}
}

// namedEventProblems lists every event a State names (OnSuccess,
// OnSuccessCancelled, OnFailure, OnExhausted, OnSignal) that does not leave
// that state, and every event named by a terminal state.
func namedEventProblems(d *Definition) []string {
	var problems []string
	for _, s := range d.States {
		named := map[string]string{
			"OnSuccess": s.OnSuccess, "OnSuccessCancelled": s.OnSuccessCancelled,
			"OnFailure": s.OnFailure, "OnExhausted": s.OnExhausted,
		}
		for sig, ev := range s.OnSignal {
			named["OnSignal["+sig+"]"] = ev
		}
		for _, field := range mapsKeys(named) {
			ev := named[field]
			if ev == "" {
				continue
			}
			if s.Terminal() {
				problems = append(problems, fmt.Sprintf("terminal %s names %s %q", s.Name, field, ev))
			} else if _, err := d.Destination(s.Name, ev); err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %v", s.Name, field, err))
			}
		}
	}
	return problems
}

func TestOrderV1NamedEventsLeaveTheirState(t *testing.T) {
	t.Parallel()
	d := compiledOrderV1(t)
	require.Empty(t, namedEventProblems(d))

	// The check above must catch a misspelled name: break each field of a
	// compiled copy after validation and look for the complaint.
	for _, tc := range []struct {
		name  string
		state int
		set   func(s *State)
	}{
		{"OnSuccess", 1, func(s *State) { s.OnSuccess = "reserverd" }},
		{"OnSuccessCancelled", 6, func(s *State) { s.OnSuccessCancelled = "released_cancelled" }},
		{"OnFailure", 2, func(s *State) { s.OnFailure = "charged_failed" }},
		{"OnExhausted", 1, func(s *State) { s.OnExhausted = "reserve_failed_" }},
		{"OnSignal", 0, func(s *State) { s.OnSignal = map[string]string{SignalCancel: "cancle"} }},
		{"event of another state", 3, func(s *State) { s.OnSuccess = "charged" }},
		{"terminal", 4, func(s *State) { s.OnExhausted = "shipped" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			broken := compiledOrderV1(t)
			tc.set(&broken.States[tc.state])
			require.Len(t, namedEventProblems(broken), 1)
		})
	}
}

// TestCompileRejects registers broken variants of OrderV1, one per rule
// compile enforces.
func TestCompileRejects(t *testing.T) {
	t.Parallel()
	state := func(d *Definition, name string) *State {
		i := slices.IndexFunc(d.States, func(s State) bool { return s.Name == name })
		if i < 0 {
			panic("no state " + name)
		}
		return &d.States[i]
	}
	for _, tc := range []struct {
		name   string
		mutate func(d *Definition)
		want   string
	}{
		{"no name", func(d *Definition) { d.Name = "" }, "needs a name and a version"},
		{"version 0", func(d *Definition) { d.Version = 0 }, "needs a name and a version"},
		{"unnamed state", func(d *Definition) { state(d, OrderCharging).Name = "" }, "state 2 has no name"},
		{"duplicate state", func(d *Definition) { d.States = append(d.States, d.States[1]) }, `state "reserving" declared twice`},
		{"invalid status", func(d *Definition) { state(d, OrderShipping).Status = "paused" }, `state "shipping" has invalid status "paused"`},
		{"missing doc", func(d *Definition) { state(d, OrderRefunding).Doc = "" }, `state "refunding" is not documented`},
		{"undeclared initial state", func(d *Definition) { d.Initial = "draft" }, `initial state "draft" is not declared`},
		{"event to undeclared state", func(d *Definition) {
			d.Events = append(d.Events, fsm.EventDesc{Name: "hold", Src: []string{OrderCharging}, Dst: "on_hold"})
		}, `event "hold" goes to undeclared state "on_hold"`},
		{"event from undeclared state", func(d *Definition) {
			d.Events = append(d.Events, fsm.EventDesc{Name: "resume", Src: []string{"on_hold"}, Dst: OrderCharging})
		}, `event "resume" leaves undeclared state "on_hold"`},
		{"self-transition", func(d *Definition) {
			d.Events = append(d.Events, fsm.EventDesc{Name: "retry", Src: []string{OrderCharging}, Dst: OrderCharging})
		}, `event "retry" is a self-transition on "charging"`},
		{"terminal state with outgoing events", func(d *Definition) {
			d.Events = append(d.Events, fsm.EventDesc{Name: "reopen", Src: []string{OrderCompleted}, Dst: OrderPending})
		}, `terminal state "completed" has outgoing events`},
		{"terminal state with a step", func(d *Definition) { state(d, OrderFailed).Step = StepRefund }, `terminal state "failed" declares a step or events`},
		{"terminal state names OnSignal", func(d *Definition) {
			state(d, OrderCancelled).OnSignal = map[string]string{SignalCancel: "cancel"}
		}, `terminal state "cancelled" declares a step or events`},
		{"terminal state names OnExhausted", func(d *Definition) { state(d, OrderFailed).OnExhausted = "released" }, `terminal state "failed" declares a step or events`},
		{"terminal state names OnSuccessCancelled", func(d *Definition) {
			state(d, OrderCancelled).OnSuccessCancelled = "release_cancelled"
		}, `terminal state "cancelled" declares a step or events`},
		{"misspelled OnSuccess", func(d *Definition) { state(d, OrderReserving).OnSuccess = "reserverd" }, `state "reserving" names event "reserverd", which does not leave it`},
		{"OnSuccess of another state", func(d *Definition) { state(d, OrderShipping).OnSuccess = "charged" }, `state "shipping" names event "charged", which does not leave it`},
		{"misspelled OnSuccessCancelled", func(d *Definition) { state(d, OrderReleasing).OnSuccessCancelled = "released_cancelled" }, `names event "released_cancelled"`},
		{"misspelled OnFailure", func(d *Definition) { state(d, OrderCharging).OnFailure = "charge_fail" }, `names event "charge_fail"`},
		{"misspelled OnExhausted", func(d *Definition) { state(d, OrderCharging).OnExhausted = "charge_unsetled" }, `names event "charge_unsetled"`},
		{"misspelled OnSignal", func(d *Definition) {
			state(d, OrderPending).OnSignal = map[string]string{SignalCancel: "cancle"}
		}, `maps signal "cancel" to event "cancle", which does not leave it`},
		{"signal in a state the event does not leave", func(d *Definition) {
			state(d, OrderShipping).OnSignal = map[string]string{SignalCancel: "cancel"}
		}, `state "shipping" maps signal "cancel"`},
		{"step without OnSuccess", func(d *Definition) { state(d, OrderShipping).OnSuccess = "" }, `runs step "ship" but has no OnSuccess`},
		{"step without OnFailure", func(d *Definition) { state(d, OrderShipping).OnFailure = "" }, `runs step "ship" but has no OnFailure`},
		{"state that cannot reach a terminal", func(d *Definition) {
			d.States = append(d.States, State{Name: "limbo", Status: StatusRunning, Doc: "Waits for a signal nobody sends."})
			d.Events = append(d.Events, fsm.EventDesc{Name: "park", Src: []string{OrderPending}, Dst: "limbo"})
		}, `states [limbo] cannot reach a terminal state`},
		{"cycle that cannot reach a terminal", func(d *Definition) {
			d.States = append(d.States,
				State{Name: "ping", Status: StatusRunning, Doc: "One side of a loop."},
				State{Name: "pong", Status: StatusRunning, Doc: "The other side."})
			d.Events = append(d.Events,
				fsm.EventDesc{Name: "serve", Src: []string{OrderPending}, Dst: "ping"},
				fsm.EventDesc{Name: "hit", Src: []string{"ping"}, Dst: "pong"},
				fsm.EventDesc{Name: "hit", Src: []string{"pong"}, Dst: "ping"})
		}, `states [ping pong] cannot reach a terminal state`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := OrderV1()
			tc.mutate(d)
			err := NewRegistry().Register(d)
			require.ErrorContains(t, err, tc.want)
		})
	}

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, NewRegistry().Register(OrderV1()))
	})
}

// orderV2 is OrderV1 under version 2 with one more state, so that the two
// versions can be told apart.
func orderV2() *Definition {
	d := OrderV1()
	d.Version = 2
	d.States = append(d.States, State{Name: "reviewing", Status: StatusRunning, OnSignal: map[string]string{"approve": "approve", "reject": "reject"},
		Doc: "Waiting for a human to approve or reject the order."})
	d.Events = append(d.Events,
		fsm.EventDesc{Name: "review", Src: []string{OrderPending}, Dst: "reviewing"},
		fsm.EventDesc{Name: "approve", Src: []string{"reviewing"}, Dst: OrderReserving},
		fsm.EventDesc{Name: "reject", Src: []string{"reviewing"}, Dst: OrderCancelled})
	return d
}

func TestRegistry(t *testing.T) {
	t.Parallel()

	t.Run("versions side by side", func(t *testing.T) {
		t.Parallel()
		r := NewRegistry().MustRegister(orderV2(), OrderV1()) // the order of registration does not matter
		v1, err := r.Get(OrderWorkflow, 1)
		require.NoError(t, err)
		v2, err := r.Get(OrderWorkflow, 2)
		require.NoError(t, err)
		require.Equal(t, "order/v1", v1.Key())
		require.Equal(t, "order/v2", v2.Key())
		_, err = v1.Destination(OrderPending, "review")
		require.ErrorAs(t, err, new(*InvalidTransitionError))
		dst, err := v2.Destination(OrderPending, "review")
		require.NoError(t, err)
		require.Equal(t, "reviewing", dst)

		def, err := r.Default(OrderWorkflow)
		require.NoError(t, err)
		require.Same(t, v2, def, "the highest version is the default")

		all := r.All()
		require.Len(t, all, 2)
		require.Equal(t, []string{"order/v1", "order/v2"}, []string{all[0].Key(), all[1].Key()})
		require.Equal(t, []string{QueueInventory, QueuePayments, QueueShipping, DefaultQueue}, r.Queues())
	})

	t.Run("missing version", func(t *testing.T) {
		t.Parallel()
		r := NewOrderRegistry()
		_, err := r.Get(OrderWorkflow, 3)
		require.ErrorIs(t, err, ErrUnknownVersion)
		require.ErrorContains(t, err, "order/v3")
		_, err = r.Get("refund", 1)
		require.ErrorIs(t, err, ErrUnknownVersion)
		_, err = r.Default("refund")
		require.ErrorIs(t, err, ErrUnknownVersion)
	})

	t.Run("SetDefault", func(t *testing.T) {
		t.Parallel()
		r := NewRegistry().MustRegister(OrderV1(), orderV2())
		require.NoError(t, r.SetDefault(OrderWorkflow, 1))
		def, err := r.Default(OrderWorkflow)
		require.NoError(t, err)
		require.Equal(t, 1, def.Version)

		require.ErrorIs(t, r.SetDefault(OrderWorkflow, 7), ErrUnknownVersion)
		require.ErrorIs(t, r.SetDefault("refund", 1), ErrUnknownVersion)
		def, err = r.Default(OrderWorkflow)
		require.NoError(t, err)
		require.Equal(t, 1, def.Version, "a refused SetDefault changes nothing")
	})

	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		r := NewOrderRegistry()
		require.ErrorContains(t, r.Register(OrderV1()), "order/v1 registered twice")
		require.Len(t, r.All(), 2, "versions 1 and 2")
	})

	t.Run("MustRegister panics on an invalid definition", func(t *testing.T) {
		t.Parallel()
		d := OrderV1()
		d.Initial = "nowhere"
		require.Panics(t, func() { NewRegistry().MustRegister(d) })
	})
}

func TestInvalidTransitionError(t *testing.T) {
	t.Parallel()
	err := error(&InvalidTransitionError{Definition: "order/v1", State: OrderShipping, Event: "cancel"})
	require.EqualError(t, err, `order/v1: event "cancel" cannot fire in state "shipping"`)
	var target *InvalidTransitionError
	require.True(t, errors.As(fmt.Errorf("signalling: %w", err), &target))
}

// sorted returns a sorted, non-nil copy of xs.
func sorted(xs []string) []string {
	out := append([]string{}, xs...)
	slices.Sort(out)
	return out
}

// mapsKeys returns the keys of m, sorted.
func mapsKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
