package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/internal/tracing"
	"github.com/orderflow/orderflow/statemachine"
)

// ErrInputMismatch is returned by Start when an instance with the ID exists
// with a different input.
var ErrInputMismatch = errors.New("instance exists with a different input")

// StartRequest asks for a new instance.
type StartRequest struct {
	ID       string
	Workflow string
	// Input is the instance's input as JSON.
	Input []byte
	// Fingerprint identifies the input; a second Start with the same ID and
	// fingerprint is a replay.
	Fingerprint string
	// KeyHash, when set, is the hash of the caller-scoped Idempotency-Key the
	// instance was created under (statemachine.HashIdempotencyKey). It is
	// kept in the record (field "ik") so that an audit can find two
	// instances made under one key.
	KeyHash string
	// Priority orders the instance's steps under a backlog; "" is normal.
	Priority statemachine.Priority
}

// StartResult says what Start did.
type StartResult struct {
	// Replayed is true when the instance already existed with this input;
	// nothing new was started.
	Replayed bool
	// Instance is the new instance as accepted; nil for a replay (load it).
	Instance *statemachine.Instance
}

// InitialTaskID is the ID of the task that drives a new instance first.
func InitialTaskID(id string) string { return "adv:" + id + ":0" }

// Start creates an instance and queues its first task. The task is queued
// first, then the instance is written, so an instance that exists always
// has a task. If writing the instance fails, the caller gets an error and the
// task, finding no instance, does nothing; a retried Start with the same ID
// and input completes the job. A Start for an existing ID is a replay (same
// input) or ErrInputMismatch.
func (e *Engine) Start(ctx context.Context, req StartRequest) (StartResult, error) {
	def, err := e.registry.Default(req.Workflow)
	if err != nil {
		return StartResult{}, err
	}
	e.store.EnsureClock(ctx)
	now := e.store.Now()
	taskID := InitialTaskID(req.ID)
	initial, _ := def.State(def.Initial)
	prio := cmp.Or(req.Priority, statemachine.PriorityNormal)
	t := Task{InstanceID: req.ID, Queue: statemachine.QueueName(def.QueueOf(initial), prio), TaskID: taskID,
		Hint: &Hint{Workflow: def.Name, Version: def.Version, State: def.Initial, Rev: 1, Input: req.Input, At: now, Priority: prio,
			Fingerprint: req.Fingerprint}}
	if err := e.queue.Enqueue(ctx, t); err != nil {
		return StartResult{}, fmt.Errorf("queueing first task: %w", err)
	}
	cr, err := e.store.Create(ctx, statemachine.NewInstance{
		ID: req.ID, Definition: def, Fingerprint: req.Fingerprint, KeyHash: req.KeyHash, Priority: prio, Input: req.Input, Task: taskID,
		Due: now.Add(e.cfg.PickupGrace), TraceParent: tracing.TraceParent(ctx),
	})
	if err != nil {
		return StartResult{}, err
	}
	if !cr.Created {
		if !cr.SameInput {
			return StartResult{}, ErrInputMismatch
		}
		return StartResult{Replayed: true}, nil
	}
	return StartResult{Instance: &statemachine.Instance{
		ID: req.ID, Workflow: def.Name, Version: def.Version, State: def.Initial, Status: statemachine.StatusRunning,
		Rev: cr.Rev, Created: cr.CreatedAt, Updated: cr.CreatedAt, Fingerprint: req.Fingerprint,
		KeyHash: req.KeyHash, Incarnation: cr.Incarnation, Priority: prio,
		Task: taskID, Input: req.Input,
		Signals: map[string]bool{}, Attempts: map[string]int{}, Declined: map[string]bool{}, Policies: map[string]statemachine.RetryPolicy{}, Results: map[string]string{},
	}}, nil
}
