package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// BenchmarkAdvance is one whole order advanced by one task, start to
// completed (four transitions), with in-process providers on a real
// redis-server.
func BenchmarkAdvance(b *testing.B) {
	r := redistest.New(b, redistest.BackendRedis)
	bb := setup(b, r, setupOpts{})
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		id := fmt.Sprintf("o%d", i)
		bb.start(b, id)
		b.StartTimer()
		if err := bb.eng.Advance(context.Background(), id, engine.AdvanceOptions{Queue: statemachine.DefaultQueue}); err != nil {
			b.Fatal(err)
		}
	}
}
