package tasks

import (
	"testing"
	"time"

	"github.com/orderflow/orderflow/engine"
)

var benchTask = engine.Task{InstanceID: "order-12345", Queue: "workflow", TaskID: "adv:order-12345:0",
	Hint: &engine.Hint{Workflow: "order", Version: 1, State: "pending", Rev: 1, At: time.UnixMilli(1764150000123),
		Input: []byte(`{"customer_id":"cust-42","currency":"USD","amount_cents":4998,"items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}]}`)}}

// BenchmarkNewAdvanceTask is the encoding of a first task's payload.
func BenchmarkNewAdvanceTask(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewAdvanceTask(benchTask); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAdvancePayload is the decoding a worker does per task.
func BenchmarkDecodeAdvancePayload(b *testing.B) {
	t, err := NewAdvanceTask(benchTask)
	if err != nil {
		b.Fatal(err)
	}
	payload := t.Payload()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAdvancePayload(payload); err != nil {
			b.Fatal(err)
		}
	}
}
