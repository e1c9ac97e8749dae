package engine

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/orderflow/orderflow/statemachine"
)

// With tracing off (OpenTelemetry's global no-op), the spans of an advance
// and of a step attempt cost what the no-op's spans cost, and nothing for
// their names or attributes. (Not parallel: AllocsPerRun counts the whole
// process.)
func TestSpansCostNothingMoreWhenOff(t *testing.T) {
	ctx := context.Background()
	bare := otel.GetTracerProvider().Tracer("bare")
	noop := testing.AllocsPerRun(200, func() {
		_, span := bare.Start(ctx, "span")
		span.End()
	})
	r := &run{e: &Engine{tracer: newTracer(nil, statemachine.NewOrderRegistry())}, id: "o-1",
		inst: &statemachine.Instance{ID: "o-1", Workflow: statemachine.OrderWorkflow, Version: 1, State: statemachine.OrderCharging}}
	ours := testing.AllocsPerRun(200, func() {
		_, span := r.startAdvance(ctx, AdvanceOptions{})
		endSpan(span, nil)
		_, span = r.startStep(ctx, statemachine.StepCharge, "", 1)
		endSpan(span, nil)
	})
	require.Equal(t, 2*noop, ours, "two spans at the no-op's cost (%v allocations each)", noop)
}
