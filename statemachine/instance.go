package statemachine

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Field names in an instance's record hash. Short names keep the hash in
// Redis's compact listpack encoding.
const (
	fieldWorkflow    = "wf"
	fieldVersion     = "v"
	fieldState       = "st"
	fieldStatus      = "stt"
	fieldRev         = "rev"
	fieldCreated     = "ct"
	fieldUpdated     = "ut"
	fieldFingerprint = "fp"
	fieldLeaseToken  = "lt"
	fieldLeaseUntil  = "lu"
	fieldNextAt      = "na"
	fieldTask        = "tk"
	fieldError       = "err"
	fieldReason      = "rsn"
	fieldKeyHash     = "ik"
	fieldDeadLetter  = "dl"
	fieldPriority    = "pr"
	fieldDeadline    = "tm"
	fieldPaused      = "ps"
	fieldBranches    = "bs"
	fieldProgress    = "pg"
	fieldIncarnation = "inc"
	fieldTraceParent = "tp"

	prefixSignal   = "s:"
	prefixAttempt  = "a:"
	prefixDeclined = "x:"
	prefixResult   = "r:"
	prefixPolicy   = "p:"
	prefixApplied  = "sa:"
	prefixBranchAt = "bt:"
	prefixBranchOK = "bo:"
)

// The outcomes of a fan-out branch, as Instance.BranchOutcome holds them.
const (
	BranchSucceeded = "ok"
	BranchDeclined  = "declined"
	BranchInDoubt   = "doubt"
)

// BranchSep joins a step and a branch in the keys of a fan-out branch's
// attempts, declines and results: "reserve@east", "reservation_id@east".
const BranchSep = "@"

// BranchKey is the key of name (a step or a result) for branch.
func BranchKey(name, branch string) string { return name + BranchSep + branch }

// maxErrorLen bounds the last error kept in the record; the history keeps
// every error whole.
const maxErrorLen = 60

// Instance is one workflow instance (an order) as stored in Redis.
type Instance struct {
	ID       string
	Workflow string
	Version  int
	State    string
	Status   Status
	// Rev is the revision: it grows by one with every write except lease
	// claims and renewals, and is what transitions compare.
	Rev     int64
	Created time.Time
	Updated time.Time
	// Fingerprint identifies the input, for replay detection.
	Fingerprint string
	// KeyHash is the hash of the caller-scoped Idempotency-Key the instance
	// was created under, or "".
	KeyHash string
	// Incarnation counts the instances that have carried this ID: 1 for
	// the first, more when the ID was reused after an earlier instance
	// expired. It makes the provider keys of each incarnation distinct
	// (see KeyPrefix).
	Incarnation int
	// LeaseToken and LeaseUntil describe the engine's lease, if any.
	LeaseToken string
	LeaseUntil time.Time
	// NextAt is the earliest time the current step may be attempted again.
	NextAt time.Time
	// Task is the ID of the asynq task expected to drive the instance next.
	Task string
	// LastError is the last step error, shortened.
	LastError string
	// Reason is why the instance compensates: ReasonFailed or
	// ReasonCancelled, or empty.
	Reason string
	// Priority orders the instance's steps under a backlog (normal when
	// the record has none).
	Priority Priority
	// Deadline is when the waiting state the instance is in times out (see
	// State.Timeout), or zero.
	Deadline time.Time
	// Paused is set while an operator has paused the instance: no step
	// starts until it is resumed.
	Paused bool
	// Branches are the branches of the fan-out step the instance is in,
	// fixed when it entered the state.
	Branches []string
	// Applied holds the signals that were acted on, for telling a replay
	// of a signal from a new one.
	Applied map[string]bool
	// BranchAt holds when each branch's outcome was recorded ("step@branch"
	// -> time), so a fan-in can tell which success came first.
	BranchAt map[string]time.Time
	// BranchOutcome holds each fan-out branch's definite outcome
	// ("step@branch" -> BranchSucceeded, BranchDeclined or BranchInDoubt).
	BranchOutcome map[string]string
	// Progress is the last progress a long step reported, as JSON, or "".
	Progress string
	// TraceParent is the W3C traceparent of the request that created the
	// instance, or "" when it was not traced.
	TraceParent string
	// DeadLetter names the step parked for an operator after it exhausted
	// its attempts, or is empty. A parked step is not retried until an
	// operator retries or resolves it.
	DeadLetter string
	// Signals holds the signals received and not yet acted on.
	Signals map[string]bool
	// Attempts counts the attempts begun per step.
	Attempts map[string]int
	// Declined marks steps that got a permanent answer: their effect never
	// happened.
	Declined map[string]bool
	// Policies holds the retry policy of each step, written into the record
	// when the instance is created, so the record says how every step is
	// retried.
	Policies map[string]RetryPolicy
	// Results holds step results, such as reservation_id.
	Results map[string]string
	// Input is the instance's input (the order request), as JSON.
	Input []byte
	// Decoded caches the input as its activities decode it, for the steps
	// of one run (see orders' activities). It is never stored.
	Decoded any
}

// Leased reports whether a lease other than token is live at now.
func (in *Instance) Leased(token string, now time.Time) bool {
	return in.LeaseToken != "" && in.LeaseToken != token && in.LeaseUntil.After(now)
}

// decodeInstance builds an Instance from a record hash and the created event.
func decodeInstance(id string, h map[string]string, created string) *Instance {
	in := &Instance{
		ID:          id,
		Workflow:    h[fieldWorkflow],
		Version:     atoi(h[fieldVersion]),
		State:       h[fieldState],
		Status:      Status(h[fieldStatus]),
		Rev:         int64(atoi(h[fieldRev])),
		Created:     fromMicros(h[fieldCreated]),
		Updated:     fromMicros(h[fieldUpdated]),
		Fingerprint: h[fieldFingerprint],
		KeyHash:     h[fieldKeyHash],
		Incarnation: max(atoi(h[fieldIncarnation]), 1),
		LeaseToken:  h[fieldLeaseToken],
		LeaseUntil:  fromMillis(h[fieldLeaseUntil]),
		NextAt:      fromMillis(h[fieldNextAt]),
		Task:        h[fieldTask],
		LastError:   h[fieldError],
		Reason:      h[fieldReason],
		DeadLetter:  h[fieldDeadLetter],
		Priority:    PriorityNormal,
		Deadline:    fromMillis(h[fieldDeadline]),
		Paused:      h[fieldPaused] == "1",
		Progress:    h[fieldProgress],
		TraceParent: h[fieldTraceParent],
		Signals:     map[string]bool{},
		Attempts:    map[string]int{},
		Declined:    map[string]bool{},
		Policies:    map[string]RetryPolicy{},
		Results:     map[string]string{},
	}
	if p, err := ParsePriority(h[fieldPriority]); err == nil {
		in.Priority = p
	}
	if bs := h[fieldBranches]; bs != "" {
		in.Branches = strings.Split(bs, ",")
	}
	for k, v := range h {
		if v != "" {
			in.setStepField(k, v)
		}
	}
	if created != "" {
		if ev, err := decodeEvent(created); err == nil {
			in.Input = ev.Detail
		}
	}
	return in
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func fromMicros(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

func fromMillis(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func millis(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// Fields is a set of record fields a Change writes, built with its methods.
type Fields []string

// Result records a step result, such as reservation_id.
func (f *Fields) Result(name, value string) { *f = append(*f, prefixResult+name, value) }

// Attempt records the number of attempts begun for step.
func (f *Fields) Attempt(step string, n int) {
	*f = append(*f, prefixAttempt+step, strconv.Itoa(n))
}

// Declined marks step as having had a permanent answer (nothing applied);
// false clears the mark when the step is entered afresh.
func (f *Fields) Declined(step string, on bool) {
	v := ""
	if on {
		v = "1"
	}
	*f = append(*f, prefixDeclined+step, v)
}

// Signal records (true) or consumes (false) a signal.
func (f *Fields) Signal(name string, on bool) {
	v := ""
	if on {
		v = "1"
	}
	*f = append(*f, prefixSignal+name, v)
}

// NextAt sets the earliest next attempt; the zero time clears it.
func (f *Fields) NextAt(t time.Time) {
	v := ""
	if !t.IsZero() {
		v = millis(t)
	}
	*f = append(*f, fieldNextAt, v)
}

// Task records the ID of the task expected to drive the instance next.
func (f *Fields) Task(id string) { *f = append(*f, fieldTask, id) }

// Error records the last error, shortened; "" clears it.
func (f *Fields) Error(msg string) {
	if len(msg) > maxErrorLen {
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "")
	}
	*f = append(*f, fieldError, msg)
}

// Deadline sets the deadline of the waiting state the instance enters; the
// zero time clears it.
func (f *Fields) Deadline(t time.Time) {
	v := ""
	if !t.IsZero() {
		v = millis(t)
	}
	*f = append(*f, fieldDeadline, v)
}

// Paused pauses (true) or resumes (false) the instance.
func (f *Fields) Paused(on bool) {
	v := ""
	if on {
		v = "1"
	}
	*f = append(*f, fieldPaused, v)
}

// Branches fixes the branches of the fan-out the instance enters; nil
// clears them.
func (f *Fields) Branches(bs []string) { *f = append(*f, fieldBranches, strings.Join(bs, ",")) }

// Applied marks a signal as acted on.
func (f *Fields) Applied(signal string) { *f = append(*f, prefixApplied+signal, "1") }

// BranchAt records when a branch's outcome came.
func (f *Fields) BranchAt(key string, t time.Time) { *f = append(*f, prefixBranchAt+key, millis(t)) }

// BranchOutcome records a fan-out branch's definite outcome.
func (f *Fields) BranchOutcome(key, outcome string) { *f = append(*f, prefixBranchOK+key, outcome) }

// Progress records a long step's progress (JSON); "" clears it.
func (f *Fields) Progress(p string) { *f = append(*f, fieldProgress, p) }

// DeadLetter parks step for an operator; "" lifts the parking.
func (f *Fields) DeadLetter(step string) { *f = append(*f, fieldDeadLetter, step) }

// Reason records why the instance compensates.
func (f *Fields) Reason(r string) { *f = append(*f, fieldReason, r) }

// ApplyFields updates the instance in memory as a successful write of f
// updated its record.
func (in *Instance) ApplyFields(f Fields) {
	for i := 0; i+1 < len(f); i += 2 {
		k, v := f[i], f[i+1]
		switch {
		case k == fieldNextAt:
			in.NextAt = fromMillis(v)
		case k == fieldTask:
			in.Task = v
		case k == fieldError:
			in.LastError = v
		case k == fieldReason:
			in.Reason = v
		case k == fieldDeadLetter:
			in.DeadLetter = v
		case k == fieldDeadline:
			in.Deadline = fromMillis(v)
		case k == fieldPaused:
			in.Paused = v == "1"
		case k == fieldBranches:
			in.Branches = nil
			if v != "" {
				in.Branches = strings.Split(v, ",")
			}
		case k == fieldProgress:
			in.Progress = v
		default:
			in.setStepField(k, v)
		}
	}
}

// setStepField applies one prefixed field (signal, attempts, declined,
// result) to the instance's maps; other fields are ignored.
func (in *Instance) setStepField(k, v string) {
	switch {
	case strings.HasPrefix(k, prefixApplied):
		if in.Applied == nil {
			in.Applied = map[string]bool{}
		}
		in.Applied[k[len(prefixApplied):]] = v == "1"
	case strings.HasPrefix(k, prefixBranchOK):
		if in.BranchOutcome == nil {
			in.BranchOutcome = map[string]string{}
		}
		in.BranchOutcome[k[len(prefixBranchOK):]] = v
	case strings.HasPrefix(k, prefixBranchAt):
		if in.BranchAt == nil {
			in.BranchAt = map[string]time.Time{}
		}
		in.BranchAt[k[len(prefixBranchAt):]] = fromMillis(v)
	case strings.HasPrefix(k, prefixSignal):
		in.Signals[k[len(prefixSignal):]] = v == "1"
	case strings.HasPrefix(k, prefixAttempt):
		in.Attempts[k[len(prefixAttempt):]] = atoi(v)
	case strings.HasPrefix(k, prefixDeclined):
		in.Declined[k[len(prefixDeclined):]] = v == "1"
	case strings.HasPrefix(k, prefixResult):
		in.Results[k[len(prefixResult):]] = v
	case strings.HasPrefix(k, prefixPolicy):
		if p, err := ParseRetryPolicy(v); err == nil {
			if in.Policies == nil {
				in.Policies = map[string]RetryPolicy{}
			}
			in.Policies[k[len(prefixPolicy):]] = p
		}
	}
}

// Policies sets the retry policies of the instance's steps, one short field
// per step (a value over 64 bytes would cost the record Redis's compact
// encoding).
func (f *Fields) Policies(ps map[string]RetryPolicy) {
	for _, step := range slices.Sorted(maps.Keys(ps)) {
		*f = append(*f, prefixPolicy+step, ps[step].WithDefaults().String())
	}
}

// StepPolicies returns the retry policy of every step of d.
func StepPolicies(d *Definition) map[string]RetryPolicy {
	out := map[string]RetryPolicy{}
	for _, s := range d.States {
		if s.Step != "" {
			out[s.Step] = s.Retry.WithDefaults()
		}
	}
	return out
}

// PolicyOf returns the retry policy step runs under: the one in the record,
// or def when the record has none.
func (in *Instance) PolicyOf(step string, def RetryPolicy) RetryPolicy {
	if p, ok := in.Policies[step]; ok {
		return p
	}
	return def.WithDefaults()
}

// InDoubt reports whether step may have applied its effect without the
// instance knowing its result: it was attempted, no result was recorded
// under resultKey, and no permanent answer said it never happened. A
// compensation settles such a step (repeats the call under the same key to
// learn its result) before undoing it.
func (in *Instance) InDoubt(step, resultKey string) bool {
	return in.Results[resultKey] == "" && in.Attempts[step] > 0 && !in.Declined[step]
}

// QueueOf returns the queue the instance's step in st runs on: the
// definition's queue for it, at the instance's priority.
func (in *Instance) QueueOf(d *Definition, st *State) string {
	return QueueName(d.QueueOf(st), in.Priority)
}

// IncarnationMark separates an instance ID from its incarnation in the
// prefix of provider idempotency keys. It is not allowed in IDs, so a key
// parses back unambiguously.
const IncarnationMark = "~"

// KeyPrefix is what every provider idempotency key of the instance starts
// with: its ID for the first incarnation, "<id>~<n>" for a later one, so a
// reused ID never meets the answers its earlier instance got. The keys are
// "<prefix>:<operation>" (PROVIDERS.md).
func (in *Instance) KeyPrefix() string { return KeyPrefix(in.ID, in.Incarnation) }

// KeyPrefix returns the key prefix of incarnation n of instance id.
func KeyPrefix(id string, n int) string {
	if n <= 1 {
		return id
	}
	return id + IncarnationMark + strconv.Itoa(n)
}

// KeyIncarnation returns the incarnation a provider idempotency key of
// instance id belongs to: 1 for "<id>:<op>...", n for "<id>~<n>:<op>...",
// and 0 when the key is not one of id's.
func KeyIncarnation(id, key string) int {
	rest, ok := strings.CutPrefix(key, id)
	if !ok {
		return 0
	}
	if strings.HasPrefix(rest, ":") {
		return 1
	}
	num, ok := strings.CutPrefix(rest, IncarnationMark)
	if !ok {
		return 0
	}
	digits, _, ok := strings.Cut(num, ":")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 2 {
		return 0
	}
	return n
}
