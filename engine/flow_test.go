package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// waitingFlow governs the charge step: its first Admit makes the attempt
// wait, the later ones admit it.
type waitingFlow struct {
	wait  time.Duration
	asked atomic.Int32
}

func (f *waitingFlow) Governs(st *statemachine.State) bool { return st.Step == statemachine.StepCharge }

func (f *waitingFlow) Admit(context.Context, *statemachine.Instance, *statemachine.State) (engine.Admission, error) {
	if f.asked.Add(1) == 1 {
		return engine.Admission{Wait: f.wait, Reason: "test wait"}, nil
	}
	return engine.Admission{Reason: "admitted"}, nil
}

// A short flow-control wait is waited in place while the worker has
// nothing else to do, and handed to a delayed task while tasks wait in its
// queues: a worker whose runs all sat out a provider's 429 hold or its
// rate limit in place had no capacity left for the orders queued behind
// them (orders resumed after a worker died among them).
func TestFlowWaitHandsOffWhileTasksWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		backlog int64
		inPlace bool
	}{{"idle", 0, true}, {"busy", 3, false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			flow := &waitingFlow{wait: 800 * time.Millisecond}
			var backlog atomic.Int64
			b := setup(t, redistest.New(t, redistest.BackendMiniredis), setupOpts{cfg: engine.Config{
				Flow:    flow,
				Backlog: func(q string) int64 { return backlog.Load() },
			}})
			b.start(t, "o1")
			// Run up to the charge step's queue: with tasks waiting, runs
			// hand off at every change of queue.
			backlog.Store(1)
			for range 10 {
				in := b.load(t, "o1")
				if in.State == statemachine.OrderCharging {
					break
				}
				require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.DefaultQueue}))
				for _, task := range b.queue.take() {
					require.NoError(t, b.eng.Advance(context.Background(), task.InstanceID, engine.AdvanceOptions{Queue: task.Queue, TaskID: task.TaskID}))
				}
			}
			require.Equal(t, statemachine.OrderCharging, b.load(t, "o1").State)
			b.queue.take()
			backlog.Store(tc.backlog)
			began := time.Now()
			require.NoError(t, b.eng.Advance(context.Background(), "o1", engine.AdvanceOptions{Queue: statemachine.QueuePayments}))
			took := time.Since(began)
			if tc.inPlace {
				require.GreaterOrEqual(t, took, flow.wait, "waited in place")
				require.Equal(t, int32(2), flow.asked.Load(), "asked again after the wait")
				return
			}
			require.Equal(t, int32(1), flow.asked.Load(), "asked once")
			require.Less(t, took, flow.wait/2, "the worker was not held for the wait")
			ts := b.queue.take()
			require.Len(t, ts, 1)
			require.Equal(t, flow.wait, ts[0].Delay)
			require.Equal(t, statemachine.QueuePayments, ts[0].Queue)
			in := b.load(t, "o1")
			require.Equal(t, statemachine.OrderCharging, in.State)
			require.Empty(t, in.LeaseToken, "the lease was given up")
		})
	}
}
