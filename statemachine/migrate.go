package statemachine

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Live migration. An instance is pinned to the version it started under,
// and normally finishes on it. An operator may move instances in flight to a
// newer version when the new definition can carry them on: CheckMigration
// says, instance by instance, whether that is safe, and why not; the engine
// then moves the safe ones with one compare-and-set each (Engine.Migrate),
// recorded in their history.

// MigrationCheck is the verdict on moving one instance to another version.
type MigrationCheck struct {
	ID string `json:"order_id"`
	// From and To are the instance's state now, and the state it would be
	// in under the new version.
	From string `json:"from_state"`
	To   string `json:"to_state"`
	// Safe says it can move; Problems say why not.
	Safe     bool     `json:"safe"`
	Problems []string `json:"problems,omitempty"`
}

// ParseStateMap reads a state mapping, "old=new,old=new", for states that
// are named differently in the new version ("" is none).
func ParseStateMap(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("state map %q: want old=new pairs separated by commas", s)
		}
		if _, dup := out[from]; dup {
			return nil, fmt.Errorf("state map %q: %q mapped twice", s, from)
		}
		out[from] = to
	}
	return out, nil
}

// CheckMigration says whether instance in, of definition from, can move to
// definition to, its state mapped by mapping (a state missing there keeps
// its name). It is safe when:
//   - the instance is of from and still running, not parked for an operator,
//     and not held by a worker right now (now judges its lease);
//   - its state exists in to;
//   - a step it has begun (an attempt or a fan-out branch on record) is the
//     same step in to, so its outcome means the same there;
//   - every signal it has received and not acted on is one that state of to
//     takes;
//   - it holds every result the state of to requires (State.Requires).
func CheckMigration(from, to *Definition, in *Instance, mapping map[string]string, now time.Time) MigrationCheck {
	c := MigrationCheck{ID: in.ID, From: in.State, To: in.State}
	if t, ok := mapping[in.State]; ok {
		c.To = t
	}
	bad := func(format string, args ...any) { c.Problems = append(c.Problems, fmt.Sprintf(format, args...)) }
	switch {
	case in.Workflow != from.Name || in.Version != from.Version:
		bad("it runs %s/v%d, not %s", in.Workflow, in.Version, from.Key())
	case in.Status.Terminal():
		bad("it has finished (%s)", in.Status)
	case in.DeadLetter != "":
		bad("its step %s waits for an operator: retry or resolve it first", in.DeadLetter)
	case in.Leased("", now):
		bad("a worker is running it now; try again in a moment")
	}
	src, _ := from.State(in.State)
	dst, ok := to.State(c.To)
	if !ok {
		bad("%s has no state %q: map it to one", to.Key(), c.To)
		return c
	}
	if src != nil && src.Step != "" && src.Step != dst.Step && begun(in, src.Step) {
		bad("its step %q was begun, and %s runs %q in %q", src.Step, to.Key(), cmpStr(dst.Step, "nothing"), dst.Name)
	}
	for _, sig := range sortedTrue(in.Signals) {
		if dst.OnSignal[sig] == "" {
			bad("it received %s, which %q of %s does not take", sig, dst.Name, to.Key())
		}
	}
	for _, r := range dst.Requires {
		if in.Results[r] == "" {
			bad("%q of %s needs the result %s, which it lacks", dst.Name, to.Key(), r)
		}
	}
	c.Safe = len(c.Problems) == 0
	return c
}

// begun reports whether step has an attempt on record, itself or in any
// fan-out branch.
func begun(in *Instance, step string) bool {
	for k, n := range in.Attempts {
		if n > 0 && (k == step || strings.HasPrefix(k, step+BranchSep)) {
			return true
		}
	}
	return false
}

func sortedTrue(m map[string]bool) []string {
	var out []string
	for k, on := range m {
		if on {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// MigrationFields are the record fields a migration to definition to, into
// state dst, writes: the version, the new definition's retry policies, and
// what entering dst sets up (a deadline, a fan-out's branches).
func MigrationFields(to *Definition, dst *State, now time.Time) Fields {
	var f Fields
	f = append(f, fieldVersion, fmt.Sprint(to.Version))
	f.Policies(StepPolicies(to))
	if dst.Timeout > 0 {
		f.Deadline(now.Add(dst.Timeout))
	}
	if dst.Parallel() {
		f.Branches(dst.Branches)
	}
	return f
}
