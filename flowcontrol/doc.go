// Package flowcontrol holds the limits a fleet of workers shares through
// Redis when it calls providers, and implements engine.FlowControl with
// them. Nothing of it runs unless it is configured (Config.Enabled).
//
// # The provider gate
//
// Every attempt of a step that calls a provider first asks the provider's
// gate (scripts/gate.lua): an operator may have paused the provider
// (Admin.Pause), a 429 answer may hold it (for its Retry-After scaled by
// the share of 429s among the provider's recent calls: see holdFullShare), its circuit
// breaker may be open. A step held there waits (engine.Admission.Wait)
// without using an attempt. An admitted attempt is marked in flight and
// reports its outcome when it ends (scripts/record.lua), which is what the
// breaker counts.
//
// # Circuit breakers
//
// A breaker opens when its provider's error rate over a sliding window
// reaches BreakerConfig.ErrorRate with at least MinCalls calls (see
// BreakerConfig for what counts as an error). While it is open every step
// on the provider waits until the next probe; then the circuit is half-open
// and lets one attempt through as a probe. A successful probe closes it,
// and traffic ramps back through a rate limit that doubles from
// RampStart; a failed one opens it again for twice as long.
//
// # Concurrency limits
//
// A Limit allows at most Max attempts of a step in flight per value of an
// input field (one customer). Each value has a line in Redis
// (scripts/acquire.lua): slots held under a lease that the running attempt
// renews, so that a killed worker's slot comes free within one lease, and
// waiters served first come, first served. A step with no free slot parks
// (engine.Admission.Park); the attempt that frees a slot wakes the next
// waiter (Engine.Wake), and a janitor wakes the lines whose slots came free
// by expiry (Flow.Run).
//
// # Rate limits
//
// A Rate limits the calls to a provider with GCRA (go-redis/redis_rate),
// asked right before the attempt begins: a step over the limit waits for
// its slot, uses no attempt, and asks again once. The steps held back form
// a first-come, first-served line per provider (scripts/line.lua and
// schedule.lua): each keeps its place however early or often it asks
// again, and a newcomer queues behind the waiters rather than taking the
// token of one whose turn came. The engine waits out a short wait in place
// only while no task waits for the worker; otherwise, and for any long
// wait, it hands the order to a delayed task, so that waiters never use
// up a worker's concurrency.
//
// # Redis
//
// Every key starts with of:flow: and carries a hash tag, so that each
// script touches one cluster slot (keys.go). Every change is one script or
// one redis_rate call.
package flowcontrol
