package providers_test

import (
	"context"
	"fmt"

	"github.com/orderflow/orderflow/providers"
)

func ExampleNewInProcess() {
	p := providers.NewInProcess()
	p.DeclineCustomers = map[string]bool{"mallory": true}
	set := p.Set()
	ctx := context.Background()

	charge := providers.ChargeRequest{
		IdempotencyKey: providers.IdempotencyKey("order-1", providers.OpCharge),
		OrderID:        "order-1",
		CustomerID:     "alice",
		AmountCents:    1999,
		Currency:       "EUR",
	}
	first, _ := set.Payment.Charge(ctx, charge)
	again, _ := set.Payment.Charge(ctx, charge) // a retry: same key, same answer
	fmt.Println(first, again, p.Applied(providers.OpCharge))

	_, err := set.Payment.Charge(ctx, providers.ChargeRequest{
		IdempotencyKey: providers.IdempotencyKey("order-2", providers.OpCharge),
		OrderID:        "order-2",
		CustomerID:     "mallory",
	})
	fmt.Println(err, providers.IsPermanent(err))
	// Output:
	// txn_1 txn_1 1
	// payment charge: 402 card_declined true
}

func ExampleInProcess_Assess() {
	p := providers.NewInProcess()
	p.ReviewAboveCents = 100_00
	p.RejectCustomers = map[string]bool{"mallory": true}
	ctx := context.Background()

	for _, r := range []providers.AssessRequest{
		{OrderID: "order-1", CustomerID: "alice", AmountCents: 25_00},
		{OrderID: "order-2", CustomerID: "alice", AmountCents: 250_00},
		{OrderID: "order-3", CustomerID: "mallory", AmountCents: 25_00},
	} {
		r.IdempotencyKey = providers.IdempotencyKey(r.OrderID, providers.OpAssess)
		a, _ := p.Assess(ctx, r)
		fmt.Printf("%s: %s (%s)\n", r.OrderID, a.Decision, a.Reason)
	}
	// Output:
	// order-1: approve (no risk rule matched)
	// order-2: review (amount_cents 25000 is above the review threshold 10000)
	// order-3: reject (customer mallory is on the reject list)
}

func ExampleIdempotencyKeyFor() {
	for _, wh := range []string{"", "east", "west"} {
		fmt.Println(providers.IdempotencyKeyFor("order-1", providers.OpReserve, wh))
	}
	// Output:
	// order-1:reserve
	// order-1:reserve:east
	// order-1:reserve:west
}
