package statemachine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewInstance describes an instance to create.
type NewInstance struct {
	ID          string
	Definition  *Definition
	Fingerprint string
	// KeyHash is the hash of the Idempotency-Key the instance was created
	// under, or "" (field "ik").
	KeyHash string
	// Priority orders the instance's steps under a backlog; "" is normal.
	Priority Priority
	// TraceParent is the W3C traceparent of the request that created the
	// instance, or "" (field "tp"): every advance of the instance is a span
	// of that trace.
	TraceParent string
	// Input is the instance's input as JSON; it is kept in the "created"
	// history event.
	Input []byte
	// Task is the ID of the asynq task that drives it first; it must be
	// queued before Create.
	Task string
	// Due is when the reaper checks on the instance if its task has not
	// run by then.
	Due time.Time
}

// CreateResult tells what Create found or did.
type CreateResult struct {
	// Created is true when the instance was written now.
	Created bool
	// SameInput is true when an existing instance has the same fingerprint.
	SameInput bool
	Rev       int64
	State     string
	// CreatedAt is when the instance (new or existing) was created.
	CreatedAt time.Time
	// Version is the workflow version the instance is pinned to.
	Version int
	// Incarnation is the new instance's incarnation (see
	// Instance.Incarnation); 0 when it already existed.
	Incarnation int
}

// CreateStep names a step of Create, in the order Create writes them (see
// StoreConfig.CreateHook).
type CreateStep string

// The steps of Create.
const (
	// CreateStepIndex adds the instance to the list index and gives it a
	// due time (its shard's keys).
	CreateStepIndex CreateStep = "index"
	// CreateStepRecord writes the record and history (create.lua, the
	// instance's slot).
	CreateStepRecord CreateStep = "record"
	// CreateStepWake announces the instance on its wake list.
	CreateStepWake CreateStep = "wake"
)

// Create writes a new instance, or reports the existing one with that ID.
// The caller has queued the instance's first task before. Create then
// writes, each step after the one before it:
//
//  1. the index entries: the list index (by creation time) and the due
//     index (the pickup deadline, n.Due). They are only added, never moved,
//     so they are harmless for an instance that already exists;
//  2. the record and history (create.lua, one compare-and-set);
//  3. the announcement on the wake list, a fast path only.
//
// So a record never exists without its index entries: a crash between the
// steps leaves at most index entries without a record, which the readers
// skip and the reaper removes (the list skips such an entry while it is
// young, as its record may be on its way, and drops it later; the reaper
// drops the due entry at its pickup deadline), and a task that finds no
// instance. A retry of the request writes the same steps again.
//
// On one node (a single Redis, or the master behind Sentinels) the steps go
// in one pipeline: Redis runs one connection's commands in order, so a
// crash leaves a prefix of them. On a cluster the index entries and the
// wake list (one slot, the instance's shard) and the record (the
// instance's slot) live on different nodes: each step is then its own
// round trip, sent once the one before it was acknowledged (three round
// trips instead of one).
func (s *Store) Create(ctx context.Context, n NewInstance) (CreateResult, error) {
	now := time.UnixMicro(s.Now().UnixMicro()).UTC()
	ev, err := encodeEvent(Event{At: now, Type: EventCreated, To: n.Definition.Initial, Detail: n.Input})
	if err != nil {
		return CreateResult{}, fmt.Errorf("encoding created event: %w", err)
	}
	ct := micros(now)
	args := []any{n.Fingerprint, ev,
		fieldWorkflow, n.Definition.Name, fieldVersion, n.Definition.Version, fieldState, n.Definition.Initial,
		fieldStatus, string(StatusRunning), fieldRev, 1, fieldFingerprint, n.Fingerprint,
		fieldCreated, ct, fieldUpdated, ct, fieldTask, n.Task}
	var policies Fields
	policies.Policies(StepPolicies(n.Definition))
	for _, f := range policies {
		args = append(args, f)
	}
	if n.KeyHash != "" {
		args = append(args, fieldKeyHash, n.KeyHash)
	}
	if n.Priority != "" && n.Priority != PriorityNormal {
		args = append(args, fieldPriority, string(n.Priority))
	}
	if n.TraceParent != "" {
		args = append(args, fieldTraceParent, n.TraceParent)
	}
	k := s.shards.Of(n.ID)
	index := func(p redis.Pipeliner) {
		p.ZAddNX(ctx, s.shards.IndexKey(k), redis.Z{Score: float64(now.UnixMicro()), Member: n.ID})
		p.ZAddNX(ctx, s.shards.DueKey(k), redis.Z{Score: float64(n.Due.UnixMilli()), Member: n.ID})
	}
	var cmd *redis.Cmd
	record := func(p redis.Pipeliner) {
		cmd = s.sc.create.EvalSha(ctx, p, []string{RecordKey(n.ID), HistoryKey(n.ID), IncarnationKey(n.ID)}, args...)
	}
	// Announce it to idle workers; the list is capped so that a busy
	// system, which leaves it alone, does not grow it.
	announce := func(p redis.Pipeliner) {
		s.wake(ctx, p, k, QueueName(n.Definition.QueueOf(initialState(n.Definition)), n.Priority), n.ID)
	}
	if err := s.readyForDurable(ctx, RecordKey(n.ID)); err != nil {
		return CreateResult{}, fmt.Errorf("creating instance: %w", err)
	}
	var durable *durableWait
	if s.cluster == nil && s.cfg.CreateHook == nil {
		err = s.pipelined(ctx, func(p redis.Pipeliner) {
			index(p)
			record(p)
			announce(p)
			durable = s.awaitDurable(ctx, p)
		})
	} else {
		durable, err = s.createInSteps(ctx, n, now, k, index, record, announce)
	}
	if err == nil {
		err = durable.err()
		s.noteDurable(durable, err)
	}
	if err != nil {
		return CreateResult{}, fmt.Errorf("creating instance: %w", err)
	}
	res, err := cmd.Slice()
	if err != nil {
		return CreateResult{}, fmt.Errorf("creating instance: %w", err)
	}
	if toInt(res[0]) == 1 {
		return CreateResult{Created: true, Rev: toInt(res[1]), State: n.Definition.Initial,
			CreatedAt: now, Version: n.Definition.Version, Incarnation: int(max(toInt(res[2]), 1))}, nil
	}
	return CreateResult{
		SameInput: toInt(res[1]) == 1, Rev: toInt(res[2]), State: toString(res[3]),
		CreatedAt: fromMicros(toString(res[4])), Version: int(toInt(res[5])),
	}, nil
}

// createInSteps writes Create's steps one round trip after the other (a
// cluster, or a test hook), each made durable as configured on the node
// that took it. It returns the record's durability wait.
func (s *Store) createInSteps(ctx context.Context, n NewInstance, now time.Time, k int,
	index, record, announce func(p redis.Pipeliner)) (*durableWait, error) {
	hook := s.cfg.CreateHook
	if hook == nil {
		hook = func(CreateStep) error { return nil }
	}
	if err := hook(CreateStepIndex); err != nil {
		return nil, err
	}
	w, err := s.send(ctx, s.shards.DueKey(k), true, index, nil)
	if err == nil {
		err = w.err()
		s.noteDurable(w, err)
	}
	if err != nil {
		return nil, err
	}
	if err := hook(CreateStepRecord); err != nil {
		return nil, err
	}
	if w, err = s.send(ctx, RecordKey(n.ID), true, record, nil); err != nil {
		return nil, err
	}
	// A writer that stalled past half the pickup grace between its steps
	// may have had its due entry removed by a reaper that found no record:
	// write the index entries again (they are only ever added).
	if grace := n.Due.Sub(now); grace > 0 && s.Now().Sub(now) > grace/2 {
		if err := s.pipelined(ctx, index); err != nil {
			return nil, err
		}
	}
	// The announcement goes last: a worker that takes it at once must find
	// the record.
	if err := hook(CreateStepWake); err != nil {
		return nil, err
	}
	return w, s.pipelined(ctx, announce)
}

// A queue's wake lists hold at most about wakeCap IDs in all (each of N
// shards wakeCap/N, at least wakeShardCap); a list is trimmed on one push
// in wakeTrimEvery.
const (
	wakeCap       = 1000
	wakeShardCap  = 64
	wakeTrimEvery = 100
)

// wake queues, in p, the announcement of instance id on queue's wake list
// in shard k, first in first out (pushed at the tail; the workers pop the
// head). The lists are capped, dropping the oldest, so that a busy system,
// which leaves them alone, does not grow them: a dropped announcement costs
// only the wait for the instance's asynq task.
func (s *Store) wake(ctx context.Context, p redis.Pipeliner, k int, queue, id string) {
	key := s.shards.WakeKey(k, queue)
	p.RPush(ctx, key, id)
	if rand.IntN(wakeTrimEvery) == 0 {
		p.LTrim(ctx, key, -int64(max(wakeCap/s.shards.N(), wakeShardCap)), -1)
	}
}

func initialState(d *Definition) *State {
	s, _ := d.State(d.Initial)
	return s
}
