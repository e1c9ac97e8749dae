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
