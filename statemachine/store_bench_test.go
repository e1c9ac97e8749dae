package statemachine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderflow/orderflow/internal/redistest"
)

// benchStore returns a store on a real redis-server of its own.
func benchStore(b *testing.B) *Store {
	b.Helper()
	r := redistest.New(b, redistest.BackendRedis)
	s := NewStore(r.Client(b), StoreConfig{})
	b.Cleanup(s.Close)
	return s
}

func benchCreate(b *testing.B, s *Store, id string) {
	b.Helper()
	def, err := NewOrderRegistry().Default(OrderWorkflow)
	if err != nil {
		b.Fatal(err)
	}
	_, err = s.Create(context.Background(), NewInstance{ID: id, Definition: def, Fingerprint: "fp",
		Input: []byte(`{"customer_id":"c","currency":"USD","amount_cents":4998,"items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}]}`),
		Task:  "t", Due: time.Now().Add(time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTransition is one compare-and-set transition script, the write
// behind every step, as a worker commits it (results, next attempt, event).
func BenchmarkTransition(b *testing.B) {
	s := benchStore(b)
	benchCreate(b, s, "o1")
	ctx := context.Background()
	rev := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var f Fields
		f.Result("transaction_id", "txn_0123456789abcdef")
		f.Attempt(StepShip, 1)
		a, err := s.Apply(ctx, Change{ID: "o1", ExpectState: OrderPending, ExpectRev: rev, Lease: LeaseIgnore,
			State: OrderPending, Status: StatusRunning, LeaseUntil: time.Now().Add(5 * time.Second),
			Event:  &Event{Type: EventTransition, Event: "charged", From: OrderCharging, To: OrderShipping, Step: StepCharge, Attempt: 1},
			Fields: f})
		if err != nil {
			b.Fatal(err)
		}
		rev = a.Rev
	}
}

// BenchmarkTransitionParallel runs transitions of many instances from many
// goroutines, as a busy worker does: the auto-pipeline shares round trips.
func BenchmarkTransitionParallel(b *testing.B) {
	s := benchStore(b)
	const n = 64
	for i := range n {
		benchCreate(b, s, fmt.Sprintf("o%d", i))
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(10)
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine owns one instance (there are fewer goroutines
		// than instances), so no compare-and-set conflicts.
		id := fmt.Sprintf("o%d", next.Add(1)%n)
		rev := int64(1)
		ctx := context.Background()
		for pb.Next() {
			a, err := s.Apply(ctx, Change{ID: id, ExpectState: OrderPending, ExpectRev: rev, Lease: LeaseIgnore,
				State: OrderPending, Status: StatusRunning, LeaseUntil: time.Now().Add(5 * time.Second),
				Event: &Event{Type: EventTransition, Event: "charged", From: OrderCharging, To: OrderShipping}})
			if err != nil {
				b.Fatal(err)
			}
			rev = a.Rev
		}
	})
}

// BenchmarkCreate is the API's write of a new instance (with its index,
// due and wake entries).
func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		benchCreate(b, s, fmt.Sprintf("c%d", i))
	}
}
