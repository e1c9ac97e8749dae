package tasks_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/tasks"
)

// testHint is a complete hint.
func testHint() *engine.Hint {
	return &engine.Hint{Workflow: "order", Version: 1, State: "pending", Rev: 3, Input: []byte(`{"customer_id":"c","items":[1,2]}`)}
}

// roundTrip encodes t as a task and decodes its payload.
func roundTrip(t *testing.T, task engine.Task) tasks.AdvancePayload {
	t.Helper()
	at, err := tasks.NewAdvanceTask(task)
	require.NoError(t, err)
	require.Equal(t, tasks.TypeWorkflowAdvance, at.Type())
	p, err := tasks.DecodeAdvancePayload(at.Payload())
	require.NoError(t, err, "payload %s", at.Payload())
	return p
}

func TestAdvancePayloadRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("without hint", func(t *testing.T) {
		t.Parallel()
		task := engine.Task{InstanceID: "order-1", Queue: "workflow", TaskID: "t1"}
		require.Equal(t, tasks.AdvancePayload{OrderID: "order-1"}, roundTrip(t, task))
		at, err := tasks.NewAdvanceTask(task)
		require.NoError(t, err)
		require.JSONEq(t, `{"order_id":"order-1"}`, string(at.Payload()), "no hint, no queue or task ID on the wire")
	})
	t.Run("with hint", func(t *testing.T) {
		t.Parallel()
		h := testHint()
		require.Equal(t, tasks.AdvancePayload{OrderID: "order-1", Hint: &tasks.HintPayload{
			Workflow: h.Workflow, Version: h.Version, State: h.State, Rev: h.Rev, Input: h.Input,
		}}, roundTrip(t, engine.Task{InstanceID: "order-1", Hint: h}))
	})
	t.Run("with hint without input", func(t *testing.T) {
		t.Parallel()
		h := testHint()
		h.Input = nil
		require.Equal(t, tasks.AdvancePayload{OrderID: "o", Hint: &tasks.HintPayload{
			Workflow: "order", Version: 1, State: "pending", Rev: 3,
		}}, roundTrip(t, engine.Task{InstanceID: "o", Hint: h}))
	})
}

func TestAdvancePayloadTraceParent(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	p, err := tasks.DecodeAdvancePayload([]byte(`{"order_id":"o1","tp":"` + tp + `"}`))
	require.NoError(t, err)
	require.Equal(t, tp, p.TraceParent)
	// A malformed one is no reason to drop the task: it is ignored.
	p, err = tasks.DecodeAdvancePayload([]byte(`{"order_id":"o1","tp":"nope"}`))
	require.NoError(t, err)
	require.Equal(t, "nope", p.TraceParent)
}

func TestNewAdvanceTaskRefusesAHintInputThatIsNotJSON(t *testing.T) {
	t.Parallel()
	h := testHint()
	h.Input = []byte("{not json")
	_, err := tasks.NewAdvanceTask(engine.Task{InstanceID: "o", Hint: h})
	require.Error(t, err)
}

// badPayloads are payloads that DecodeAdvancePayload must refuse.
var badPayloads = map[string]string{
	"empty":                 ``,
	"not JSON":              `order-1`,
	"truncated":             `{"order_id":"o1"`,
	"trailing data":         `{"order_id":"o1"} {}`,
	"null":                  `null`,
	"an array":              `["o1"]`,
	"no order_id":           `{}`,
	"empty order_id":        `{"order_id":""}`,
	"order_id not a string": `{"order_id":5}`,
	"order_id with a space": `{"order_id":"o 1"}`,
	"order_id too long":     `{"order_id":"` + strings.Repeat("a", 129) + `"}`,
	"order_id with newline": `{"order_id":"o1\n"}`,
	"hint not an object":    `{"order_id":"o1","hint":"x"}`,
	"hint empty":            `{"order_id":"o1","hint":{}}`,
	"hint without wf":       `{"order_id":"o1","hint":{"v":1,"st":"pending","rev":1}}`,
	"hint without v":        `{"order_id":"o1","hint":{"wf":"order","st":"pending","rev":1}}`,
	"hint with v 0":         `{"order_id":"o1","hint":{"wf":"order","v":0,"st":"pending","rev":1}}`,
	"hint without st":       `{"order_id":"o1","hint":{"wf":"order","v":1,"rev":1}}`,
	"hint without rev":      `{"order_id":"o1","hint":{"wf":"order","v":1,"st":"pending"}}`,
	"hint with rev -1":      `{"order_id":"o1","hint":{"wf":"order","v":1,"st":"pending","rev":-1}}`,
	"hint input not JSON":   `{"order_id":"o1","hint":{"wf":"order","v":1,"st":"pending","rev":1,"in":{nope}}}`,
}

func TestDecodeAdvancePayloadRefusesBadPayloads(t *testing.T) {
	t.Parallel()
	for name, payload := range badPayloads {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := tasks.DecodeAdvancePayload([]byte(payload))
			require.ErrorIs(t, err, tasks.ErrBadPayload)
		})
	}
	_, err := tasks.DecodeAdvancePayload([]byte(`{"order_id":"o1","hint":{"wf":"order","v":1,"st":"pending","rev":1,"in":"a string is JSON"}}`))
	require.NoError(t, err)
	_, err = tasks.DecodeAdvancePayload([]byte(`{"order_id":"` + strings.Repeat("a", 128) + `","hint":null}`))
	require.NoError(t, err)
}

func TestHandleAdvanceTaskArchivesABadPayload(t *testing.T) {
	t.Parallel()
	h := &tasks.Handler{} // never reaches the engine
	for name, payload := range badPayloads {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := h.HandleAdvanceTask(context.Background(), asynq.NewTask(tasks.TypeWorkflowAdvance, []byte(payload)))
			require.ErrorIs(t, err, asynq.SkipRetry)
			require.ErrorIs(t, err, tasks.ErrBadPayload)
		})
	}
}

func FuzzDecodeAdvancePayload(f *testing.F) {
	for _, p := range badPayloads {
		f.Add([]byte(p))
	}
	for _, p := range []string{
		`{"order_id":"o1"}`,
		`{"order_id":"A.b_c:d-9","hint":null}`,
		`{"order_id":"o1","hint":{"wf":"order","v":1,"st":"pending","rev":1}}`,
		`{"order_id":"o1","hint":{"wf":"order","v":2,"st":"charging","rev":9,"in":{"a": [1, 2.50, "<\u2028>"]}}}`,
		`{"ORDER_ID":"o1","hint":{"wf":"w","v":1,"st":"s","rev":1,"in":null},"extra":true}`,
		`{"order_id":"o1","hint":{"wf":"\ud800","v":1,"st":"s\u0000","rev":9223372036854775807,"in":"\u00e9"}}`,
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := tasks.DecodeAdvancePayload(b)
		if err != nil {
			require.ErrorIs(t, err, tasks.ErrBadPayload)
			return
		}
		task := engine.Task{InstanceID: p.OrderID}
		if h := p.Hint; h != nil {
			task.Hint = &engine.Hint{Workflow: h.Workflow, Version: h.Version, State: h.State, Rev: h.Rev, Input: h.Input}
			if h.At > 0 {
				task.Hint.At = time.UnixMilli(h.At)
			}
		}
		// The trace context rides outside engine.Task: the queue takes it
		// from the enqueuer's context.
		p.TraceParent = ""
		again := roundTrip(t, task)
		// The input is JSON kept as raw bytes; re-encoding may compact or
		// escape it, so compare what it means.
		if p.Hint != nil && again.Hint != nil {
			require.Equal(t, jsonValue(t, p.Hint.Input), jsonValue(t, again.Hint.Input))
			p.Hint.Input, again.Hint.Input = nil, nil
		}
		require.Equal(t, p, again)
	})
}

// jsonValue decodes raw exactly (numbers as written), or returns nil for no
// input.
func jsonValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	var v any
	require.NoError(t, d.Decode(&v), "input %q", raw)
	return v
}
