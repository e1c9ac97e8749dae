package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// Start creates an instance and queues its first task. The instance is
// accepted only after both are durably in Redis: it is first written as an
// invisible draft, then the task is queued, then the draft is accepted. If
// any step fails the caller gets an error and the draft is never run; the
// reaper deletes it, and a retried Start with the same ID and input
// completes it.
func (e *Engine) Start(ctx context.Context, req StartRequest) (StartResult, error) {
	def, err := e.registry.Default(req.Workflow)
	if err != nil {
		return StartResult{}, err
	}
	taskID := InitialTaskID(req.ID)
	cr, err := e.store.Create(ctx, statemachine.NewInstance{
		ID: req.ID, Definition: def, Fingerprint: req.Fingerprint, Input: req.Input, Task: taskID,
	})
	if err != nil {
		return StartResult{}, err
	}
	if !cr.Created {
		if !cr.SameInput {
			return StartResult{}, ErrInputMismatch
		}
		if cr.Accepted {
			return StartResult{Replayed: true}, nil
		}
		// A draft left by an earlier request that failed: finish it. Its
		// definition is the one it was created under.
		if def, err = e.registry.Get(req.Workflow, cr.Version); err != nil {
			return StartResult{}, err
		}
	}
	initial, _ := def.State(def.Initial)
	t := Task{InstanceID: req.ID, Queue: def.QueueOf(initial), TaskID: taskID}
	if cr.Created {
		// The draft is at revision 1 and accept makes it 2.
		t.Hint = &Hint{Workflow: def.Name, Version: def.Version, State: def.Initial, Rev: 2, Input: req.Input}
	}
	if err := e.queue.Enqueue(ctx, t); err != nil {
		return StartResult{}, fmt.Errorf("queueing first task: %w", err)
	}
	now := time.UnixMicro(e.store.Now().UnixMicro()).UTC()
	rev, _, err := e.store.AcceptAt(ctx, req.ID, cr.CreatedAt, now, now.Add(e.cfg.PickupGrace))
	if err != nil {
		return StartResult{}, err
	}
	if !cr.Created {
		return StartResult{Replayed: true}, nil
	}
	return StartResult{Instance: &statemachine.Instance{
		ID: req.ID, Workflow: def.Name, Version: def.Version, State: def.Initial, Status: statemachine.StatusRunning,
		Rev: rev, Accepted: true, Created: cr.CreatedAt, Updated: now, Fingerprint: req.Fingerprint,
		Task: taskID, Input: req.Input,
		Signals: map[string]bool{}, Attempts: map[string]int{}, Declined: map[string]bool{}, Results: map[string]string{},
	}}, nil
}
