package statemachine_test

import (
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/statemachine"
)

func ExampleDefinition_Destination() {
	def, err := statemachine.NewOrderRegistry().Default(statemachine.OrderWorkflow)
	if err != nil {
		panic(err)
	}
	charging, _ := def.State(statemachine.OrderCharging)
	fmt.Println(def.Key(), "charging fires", charging.OnFailure, "on a decline")

	dst, _ := def.Destination(statemachine.OrderCharging, charging.OnFailure)
	fmt.Println("charge_failed leads to", dst)
	fmt.Println("from shipping:", def.EventsFrom(statemachine.OrderShipping))

	_, err = def.Destination(statemachine.OrderShipping, "cancel")
	var invalid *statemachine.InvalidTransitionError
	fmt.Println(errors.As(err, &invalid), err)
	// Output:
	// order/v1 charging fires charge_failed on a decline
	// charge_failed leads to releasing
	// from shipping: [ship_failed shipped]
	// true order/v1: event "cancel" cannot fire in state "shipping"
}

func ExampleRegistry() {
	reg := statemachine.NewOrderRegistry() // versions 1 and 2, new orders on 1
	_ = reg.SetDefault(statemachine.OrderWorkflow, 2)

	def, _ := reg.Default(statemachine.OrderWorkflow)
	fmt.Println("new orders start under", def.Key())

	// An order in flight stays on the version it started under.
	pinned, _ := reg.Get(statemachine.OrderWorkflow, 1)
	fmt.Println("an old order finishes on", pinned.Key())

	_ = reg.SetDefault(statemachine.OrderWorkflow, 1) // roll back
	def, _ = reg.Default(statemachine.OrderWorkflow)
	fmt.Println("after the rollback:", def.Key())

	_, err := reg.Get(statemachine.OrderWorkflow, 3)
	fmt.Println(errors.Is(err, statemachine.ErrUnknownVersion), err)
	// Output:
	// new orders start under order/v2
	// an old order finishes on order/v1
	// after the rollback: order/v1
	// true order/v3: workflow version not registered
}
