package engine

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/internal/tracing"
	"github.com/orderflow/orderflow/statemachine"
)

// Tracing. Each advance of an instance is a span ("advance <workflow>"),
// and each step attempt, or fan-out branch, a child of it ("step <step>");
// the activity's provider calls are children of the step's span. An
// advance's parent is the span context its task carried (package tasks
// keeps it in the payload), or else the one the instance's record keeps
// from the request that started it, so that an instance is one trace
// whichever task, worker or wake-up drives it. A task whose context belongs
// to another trace (a signal's request) is linked instead.
//
// With tracing off the tracer is OpenTelemetry's no-op: span names are
// built once, attributes only for a recording span, so an attempt costs a
// context value and nothing more.

// Span attribute keys.
const (
	attrOrderID  = attribute.Key("orderflow.order_id")
	attrWorkflow = attribute.Key("orderflow.workflow")
	attrVersion  = attribute.Key("orderflow.workflow_version")
	attrStep     = attribute.Key("orderflow.step")
	attrBranch   = attribute.Key("orderflow.branch")
	attrAttempt  = attribute.Key("orderflow.attempt")
	attrState    = attribute.Key("orderflow.state")
	attrQueue    = attribute.Key("orderflow.queue")
	attrTaskID   = attribute.Key("orderflow.task_id")
)

// tracer starts the engine's spans.
type tracer struct {
	t trace.Tracer
	// names maps steps and workflows to their span names, built once.
	steps, advances map[string]string
}

func newTracer(tp trace.TracerProvider, reg *statemachine.Registry) *tracer {
	t := &tracer{t: tracing.Tracer(tp), steps: map[string]string{}, advances: map[string]string{}}
	for _, d := range reg.All() {
		t.advances[d.Name] = "advance " + d.Name
		for _, s := range d.States {
			if s.Step != "" {
				t.steps[s.Step] = "step " + s.Step
			}
		}
	}
	return t
}

// startAdvance starts the span of this run, once the run knows its
// instance.
func (r *run) startAdvance(ctx context.Context, opt AdvanceOptions) (context.Context, trace.Span) {
	var opts []trace.SpanStartOption
	if rec := tracing.SpanContext(r.inst.TraceParent); rec.IsValid() {
		if task := trace.SpanContextFromContext(ctx); task.TraceID() != rec.TraceID() {
			if task.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: task}))
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, rec)
		}
	}
	name, ok := r.e.tracer.advances[r.inst.Workflow]
	if !ok {
		name = "advance"
	}
	ctx, span := r.e.tracer.t.Start(ctx, name, opts...)
	if span.IsRecording() {
		span.SetAttributes(attrOrderID.String(r.id), attrWorkflow.String(r.inst.Workflow), attrVersion.Int(r.inst.Version),
			attrState.String(r.inst.State), attrQueue.String(r.queue), attrTaskID.String(opt.TaskID))
	}
	return ctx, span
}

// startStep starts the span of one attempt of step (of one branch of it,
// when branch is set).
func (r *run) startStep(ctx context.Context, step, branch string, attempt int) (context.Context, trace.Span) {
	name, ok := r.e.tracer.steps[step]
	if !ok {
		name = "step"
	}
	ctx, span := r.e.tracer.t.Start(ctx, name)
	if span.IsRecording() {
		span.SetAttributes(attrOrderID.String(r.id), attrWorkflow.String(r.inst.Workflow), attrVersion.Int(r.inst.Version),
			attrStep.String(step), attrAttempt.Int(attempt))
		if branch != "" {
			span.SetAttributes(attrBranch.String(branch))
		}
	}
	return ctx, span
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
