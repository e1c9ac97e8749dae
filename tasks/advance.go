// Package tasks defines orderflow's asynq tasks: their type names, payloads,
// constructors and handlers, following asynq's TypeX / NewXTask / HandleXTask
// convention, and the Queue that lets the engine enqueue them.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/tracing"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// TypeWorkflowAdvance is the one task type of the engine: advance an
// instance as far as it can go.
const TypeWorkflowAdvance = "workflow:advance"

// AdvancePayload is the payload of a workflow:advance task.
type AdvancePayload struct {
	// OrderID is the instance to advance.
	OrderID string `json:"order_id"`
	// Hint, on the first task of a new instance, carries what the API
	// knows, so the worker can take the lease with its first write.
	Hint *HintPayload `json:"hint,omitempty"`
	// TraceParent is the W3C traceparent of the span that queued the task
	// (the API request, or the advance that handed off), when tracing is
	// on: the advance it asks for is a child of that span.
	TraceParent string `json:"tp,omitempty"`
}

// HintPayload is engine.Hint on the wire.
type HintPayload struct {
	Workflow string          `json:"wf"`
	Version  int             `json:"v"`
	State    string          `json:"st"`
	Rev      int64           `json:"rev"`
	Input    json.RawMessage `json:"in,omitempty"`
	// At is when the task was queued, Unix ms.
	At int64 `json:"at,omitempty"`
	// Priority is the instance's priority; absent is normal.
	Priority string `json:"pr,omitempty"`
	// Fingerprint is the instance's input fingerprint.
	Fingerprint string `json:"fp,omitempty"`
}

// ErrBadPayload wraps every payload decoding failure.
var ErrBadPayload = errors.New("bad workflow:advance payload")

// NewAdvanceTask returns the task that advances t.InstanceID.
func NewAdvanceTask(t engine.Task) (*asynq.Task, error) {
	return newAdvanceTask(t, "")
}

// newAdvanceTask returns the task that advances t.InstanceID, carrying the
// traceparent tp ("" for none).
func newAdvanceTask(t engine.Task, tp string) (*asynq.Task, error) {
	p := AdvancePayload{OrderID: t.InstanceID, TraceParent: tp}
	if h := t.Hint; h != nil {
		p.Hint = &HintPayload{Workflow: h.Workflow, Version: h.Version, State: h.State, Rev: h.Rev, Input: h.Input, Fingerprint: h.Fingerprint}
		if h.Priority != "" && h.Priority != statemachine.PriorityNormal {
			p.Hint.Priority = string(h.Priority)
		}
		if !h.At.IsZero() {
			p.Hint.At = h.At.UnixMilli()
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding advance payload: %w", err)
	}
	return asynq.NewTask(TypeWorkflowAdvance, b), nil
}

// DecodeAdvancePayload decodes and validates a workflow:advance payload.
func DecodeAdvancePayload(b []byte) (AdvancePayload, error) {
	var p AdvancePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if !orders.ValidID(p.OrderID) {
		return p, fmt.Errorf("%w: invalid order_id %q", ErrBadPayload, p.OrderID)
	}
	if h := p.Hint; h != nil {
		if h.Workflow == "" || h.Version < 1 || h.State == "" || h.Rev < 1 || h.At < 0 {
			return p, fmt.Errorf("%w: incomplete hint", ErrBadPayload)
		}
		if _, err := statemachine.ParsePriority(h.Priority); err != nil {
			return p, fmt.Errorf("%w: %v", ErrBadPayload, err)
		}
	}
	return p, nil
}

// Handler handles orderflow's tasks with an engine.
type Handler struct {
	Engine *engine.Engine
}

// HandleAdvanceTask advances the instance named by the payload. A payload
// that cannot be decoded is archived at once (asynq.SkipRetry); an error
// from the engine (Redis unreachable, a missing workflow version) is retried
// by asynq. The payload's traceparent, if any, is the parent of the
// advance's spans.
func (h *Handler) HandleAdvanceTask(ctx context.Context, t *asynq.Task) error {
	p, err := DecodeAdvancePayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	ctx = tracing.ContextWithTraceParent(ctx, p.TraceParent)
	opt := engine.AdvanceOptions{}
	opt.Queue, _ = asynq.GetQueueName(ctx)
	opt.TaskID, _ = asynq.GetTaskID(ctx)
	if hp := p.Hint; hp != nil {
		prio, _ := statemachine.ParsePriority(hp.Priority)
		opt.Hint = &engine.Hint{Workflow: hp.Workflow, Version: hp.Version, State: hp.State, Rev: hp.Rev, Input: hp.Input, Priority: prio,
			Fingerprint: hp.Fingerprint}
		if hp.At > 0 {
			opt.Hint.At = time.UnixMilli(hp.At)
		}
	}
	return h.Engine.Advance(ctx, p.OrderID, opt)
}

// NewServeMux routes every task type to its handler.
func NewServeMux(h *Handler) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeWorkflowAdvance, h.HandleAdvanceTask)
	return mux
}
