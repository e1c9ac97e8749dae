package statemachine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/looplab/fsm"
)

// Status is the coarse, stable status of a workflow instance. Clients branch
// on it; fine-grained states belong to one workflow version.
type Status string

// The statuses. Completed, Failed and Cancelled are terminal.
const (
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether the status is final.
func (s Status) Terminal() bool { return s != StatusRunning && s != "" }

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusRunning, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Reasons recorded when an instance starts to compensate.
const (
	ReasonFailed    = "failed"
	ReasonCancelled = "cancelled"
)

// SignalCancel is the signal that asks an instance to undo what it has done
// and end cancelled.
const SignalCancel = "cancel"

// State describes one state of a workflow version: what it means, which step
// runs while an instance is in it, and which event fires on each outcome.
type State struct {
	// Name is the state's identifier, stored in the instance record.
	Name string
	// Doc says what the state means to an operator.
	Doc string
	// Status is the coarse status while in this state. Terminal states have
	// a terminal status; all others are running.
	Status Status
	// Step names the activity that runs in this state. Empty means the state
	// runs nothing: it moves on at once with OnSuccess, or, without
	// OnSuccess, waits for a signal.
	Step string
	// Queue is the asynq queue the step runs on. Empty means the
	// definition's default queue.
	Queue string
	// Resource names the external service the step calls (a provider, such
	// as "payment"), which flow control limits and breaks by; empty for a
	// step that calls none.
	Resource string
	// Retry is the step's retry policy. Zero fields take the defaults of
	// RetryPolicy.WithDefaults.
	Retry RetryPolicy
	// Compensation marks a step that undoes earlier effects. It never gives
	// up: its attempts are unlimited and a permanent error is retried at the
	// policy's maximum interval.
	Compensation bool
	// Irreversible marks a step whose effect cannot be undone or settled
	// (a shipment). An attempt without a definite answer may have applied
	// it, so the step never gives up on retryable failures: it retries,
	// with capped backoff, until the provider answers definitely. Only a
	// permanent answer, which says the effect never happened, fails it.
	Irreversible bool
	// OnSuccess is the event fired when the step succeeds (or at once when
	// there is no step).
	OnSuccess string
	// OnSuccessCancelled, when set, replaces OnSuccess for an instance that
	// compensates a cancellation, so it ends cancelled rather than failed.
	OnSuccessCancelled string
	// OnFailure is the event fired when the step fails permanently or runs
	// out of attempts.
	OnFailure string
	// OnExhausted, when set, replaces OnFailure when the step runs out of
	// attempts without a definite answer (timeouts, 5xx, crashes), so its
	// effect may exist. It leads to a compensation that settles the outcome
	// first. A permanent answer always fires OnFailure: the provider keeps
	// the first answer per key, so a decline means nothing was applied.
	OnExhausted string
	// OnSignal maps a signal (such as "cancel") to the event it fires in
	// this state. A signal missing here is refused in this state.
	OnSignal map[string]string

	// Outcome, when set, makes the step a decision: on success, the value
	// of its result Outcome picks the event to fire, from OnOutcome (a
	// risk assessment's "decision", say). A value OnOutcome lacks is an
	// error of the step, retried. OnSuccess is then unused.
	Outcome   string
	OnOutcome map[string]string

	// Timeout makes a waiting state (one that runs no step and has no
	// OnSuccess) end after this long unless a signal moved it first: the
	// engine fires OnTimeout. The deadline is set when the state is entered
	// and kept in the record, so it survives restarts; a deadline that
	// passes while the instance is paused fires on resume.
	Timeout   time.Duration
	OnTimeout string

	// Branches makes the step a fan-out: it runs once per branch, in
	// parallel, each with the branch's name in its context (see
	// engine.Branch) and attempts, results and declines of its own. The
	// branches are fixed when the state is entered and kept in the record.
	// Join decides the fan-in, once, when every branch has a definite
	// outcome (or ran out of attempts): the event to fire and the results
	// to record. OnSuccess and OnFailure are then unused.
	Branches []string
	Join     func(JoinInput) JoinDecision

	// Requires lists the results an instance must hold to be in this
	// state (a reservation before a charge); a migration checks them.
	Requires []string

	// Heartbeat makes the step long-running: its activity reports progress
	// with engine.Heartbeat at least this often. The lease is renewed only
	// by heartbeats, so a step that falls silent for longer loses it and
	// another worker takes over, with the checkpoint the last heartbeat
	// recorded.
	Heartbeat time.Duration
}

// BranchOutcome is what one branch of a fan-out produced.
type BranchOutcome struct {
	Branch string
	// Succeeded: the branch's step succeeded; Results holds its results.
	Succeeded bool
	Results   map[string]string
	// Declined: a permanent answer said nothing was applied.
	Declined bool
	// InDoubt: the branch ran out of attempts without a definite answer;
	// its effect may exist.
	InDoubt bool
	// At is when the branch's outcome was recorded.
	At time.Time
}

// JoinInput is what a fan-out's Join decides on: every branch's outcome,
// in the order of the branches.
type JoinInput struct {
	Branches []BranchOutcome
}

// JoinDecision is a fan-in's decision: the event to fire and the results to
// record with it.
type JoinDecision struct {
	Event   string
	Results map[string]string
}

// Waiting reports whether the state waits for a signal or a deadline: it
// runs no step and moves on by itself only on a timeout.
func (s *State) Waiting() bool { return s.Step == "" && s.OnSuccess == "" && !s.Status.Terminal() }

// Parallel reports whether the state's step is a fan-out.
func (s *State) Parallel() bool { return len(s.Branches) > 0 && s.Join != nil }

// Terminal reports whether the state is final.
func (s *State) Terminal() bool { return s.Status.Terminal() }

// Definition is one version of a workflow: its states and the transitions
// between them, declared once as looplab/fsm events. The FSM is used as a
// validator and transition table only; it performs no I/O.
type Definition struct {
	// Name identifies the workflow, such as "order".
	Name string
	// Version is the definition's version. Instances are pinned to the
	// version they started under.
	Version int
	// Initial is the state a new instance starts in.
	Initial string
	// Queue is the default asynq queue for steps.
	Queue string
	// States lists every state, in documentation order.
	States []State
	// Events declares every transition.
	Events fsm.Events

	states map[string]*State
	table  map[string]map[string]string // state -> event -> destination
}

// Key returns "name/vN", the registry key of the definition.
func (d *Definition) Key() string { return fmt.Sprintf("%s/v%d", d.Name, d.Version) }

// compile validates the definition and derives its transition table from the
// FSM. It is called once, by Register.
func (d *Definition) compile() error {
	if d.Name == "" || d.Version < 1 {
		return errors.New("definition needs a name and a version >= 1")
	}
	d.states = make(map[string]*State, len(d.States))
	for i := range d.States {
		s := &d.States[i]
		if s.Name == "" {
			return fmt.Errorf("%s: state %d has no name", d.Key(), i)
		}
		if _, dup := d.states[s.Name]; dup {
			return fmt.Errorf("%s: state %q declared twice", d.Key(), s.Name)
		}
		if !s.Status.Valid() {
			return fmt.Errorf("%s: state %q has invalid status %q", d.Key(), s.Name, s.Status)
		}
		if s.Doc == "" {
			return fmt.Errorf("%s: state %q is not documented", d.Key(), s.Name)
		}
		d.states[s.Name] = s
	}
	if _, ok := d.states[d.Initial]; !ok {
		return fmt.Errorf("%s: initial state %q is not declared", d.Key(), d.Initial)
	}
	for _, e := range d.Events {
		if _, ok := d.states[e.Dst]; !ok {
			return fmt.Errorf("%s: event %q goes to undeclared state %q", d.Key(), e.Name, e.Dst)
		}
		for _, src := range e.Src {
			if _, ok := d.states[src]; !ok {
				return fmt.Errorf("%s: event %q leaves undeclared state %q", d.Key(), e.Name, src)
			}
		}
	}
	d.table = make(map[string]map[string]string, len(d.states))
	for name := range d.states {
		d.table[name] = map[string]string{}
		for _, ev := range d.eventNames() {
			f := fsm.NewFSM(name, d.Events, nil)
			if !f.Can(ev) {
				continue
			}
			if err := f.Event(context.Background(), ev); err != nil {
				var noTransition fsm.NoTransitionError
				if errors.As(err, &noTransition) {
					return fmt.Errorf("%s: event %q is a self-transition on %q", d.Key(), ev, name)
				}
				return fmt.Errorf("%s: firing %q from %q: %w", d.Key(), ev, name, err)
			}
			d.table[name][ev] = f.Current()
		}
	}
	for _, s := range d.States {
		if s.Terminal() {
			if len(d.table[s.Name]) > 0 {
				return fmt.Errorf("%s: terminal state %q has outgoing events", d.Key(), s.Name)
			}
			if s.Step != "" || s.OnSuccess != "" || s.OnFailure != "" || s.OnSuccessCancelled != "" || s.OnExhausted != "" || len(s.OnSignal) > 0 ||
				s.OnTimeout != "" || len(s.OnOutcome) > 0 || s.Join != nil {
				return fmt.Errorf("%s: terminal state %q declares a step or events", d.Key(), s.Name)
			}
			continue
		}
		for _, ev := range []string{s.OnSuccess, s.OnSuccessCancelled, s.OnFailure, s.OnExhausted} {
			if ev != "" && d.table[s.Name][ev] == "" {
				return fmt.Errorf("%s: state %q names event %q, which does not leave it", d.Key(), s.Name, ev)
			}
		}
		for sig, ev := range s.OnSignal {
			if d.table[s.Name][ev] == "" {
				return fmt.Errorf("%s: state %q maps signal %q to event %q, which does not leave it", d.Key(), s.Name, sig, ev)
			}
		}
		for v, ev := range s.OnOutcome {
			if d.table[s.Name][ev] == "" {
				return fmt.Errorf("%s: state %q maps outcome %q to event %q, which does not leave it", d.Key(), s.Name, v, ev)
			}
		}
		if s.OnTimeout != "" && d.table[s.Name][s.OnTimeout] == "" {
			return fmt.Errorf("%s: state %q names timeout event %q, which does not leave it", d.Key(), s.Name, s.OnTimeout)
		}
		if (s.Timeout > 0) != (s.OnTimeout != "") || (s.Timeout > 0 && !s.Waiting()) {
			return fmt.Errorf("%s: state %q: a Timeout needs an OnTimeout and a waiting state (no step, no OnSuccess)", d.Key(), s.Name)
		}
		if (len(s.Branches) > 0) != (s.Join != nil) || (s.Join != nil && s.Step == "") {
			return fmt.Errorf("%s: state %q: a fan-out needs Branches, a Join and a Step", d.Key(), s.Name)
		}
		decides := s.Outcome != "" || s.Parallel()
		if s.Step != "" && s.OnSuccess == "" && !decides {
			return fmt.Errorf("%s: state %q runs step %q but has no OnSuccess", d.Key(), s.Name, s.Step)
		}
		if s.Step != "" && s.OnFailure == "" && !s.Compensation && !s.Parallel() {
			return fmt.Errorf("%s: state %q runs step %q but has no OnFailure", d.Key(), s.Name, s.Step)
		}
	}
	if bad := d.unreachableTerminal(); len(bad) > 0 {
		return fmt.Errorf("%s: states %v cannot reach a terminal state", d.Key(), bad)
	}
	return nil
}

func (d *Definition) eventNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, e := range d.Events {
		if !seen[e.Name] {
			seen[e.Name] = true
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	return names
}

// unreachableTerminal returns the states from which no terminal state can be
// reached.
func (d *Definition) unreachableTerminal() []string {
	good := map[string]bool{}
	for _, s := range d.States {
		if s.Terminal() {
			good[s.Name] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for src, evs := range d.table {
			if good[src] {
				continue
			}
			for _, dst := range evs {
				if good[dst] {
					good[src] = true
					changed = true
					break
				}
			}
		}
	}
	var bad []string
	for _, s := range d.States {
		if !good[s.Name] {
			bad = append(bad, s.Name)
		}
	}
	return bad
}

// State returns the named state.
func (d *Definition) State(name string) (*State, bool) {
	s, ok := d.states[name]
	return s, ok
}

// Destination returns the state that event leads to from state, or an error
// when the FSM does not allow it.
func (d *Definition) Destination(state, event string) (string, error) {
	dst, ok := d.table[state][event]
	if !ok {
		return "", &InvalidTransitionError{Definition: d.Key(), State: state, Event: event}
	}
	return dst, nil
}

// EventsFrom returns the events that may fire from state, sorted.
func (d *Definition) EventsFrom(state string) []string {
	evs := make([]string, 0, len(d.table[state]))
	for ev := range d.table[state] {
		evs = append(evs, ev)
	}
	slices.Sort(evs)
	return evs
}

// TerminalStates returns the names of the terminal states.
func (d *Definition) TerminalStates() []string {
	var out []string
	for _, s := range d.States {
		if s.Terminal() {
			out = append(out, s.Name)
		}
	}
	return out
}

// QueueOf returns the queue a state's step runs on.
func (d *Definition) QueueOf(s *State) string {
	if s.Queue != "" {
		return s.Queue
	}
	return d.Queue
}

// NewFSM returns a looplab FSM positioned at state, for callers that want the
// library's own view (diagrams, AvailableTransitions).
func (d *Definition) NewFSM(state string) *fsm.FSM { return fsm.NewFSM(state, d.Events, nil) }

// Mermaid renders the definition as a mermaid state diagram, generated by
// looplab/fsm, with the terminal states marked.
func (d *Definition) Mermaid() (string, error) {
	out, err := fsm.VisualizeWithType(d.NewFSM(d.Initial), fsm.MermaidStateDiagram)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(out)
	for _, s := range d.TerminalStates() {
		fmt.Fprintf(&b, "    %s --> [*]\n", s)
	}
	return b.String(), nil
}

// InvalidTransitionError is returned when an event does not leave a state.
type InvalidTransitionError struct {
	Definition, State, Event string
}

// Error implements error.
func (e *InvalidTransitionError) Error() string {
	return fmt.Sprintf("%s: event %q cannot fire in state %q", e.Definition, e.Event, e.State)
}
