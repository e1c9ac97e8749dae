package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// retryOrder is POST /v1/orders/{order_id}/retry (admin): a step parked as
// a dead letter gets a fresh budget of attempts and runs again now.
func (s *Server) retryOrder(c echo.Context) error {
	return s.operate(c, s.eng.RetryDeadLetter)
}

// resolveOrder is POST /v1/orders/{order_id}/resolve (admin): an operator
// settled a parked step by hand; the order moves on as if it had
// succeeded.
func (s *Server) resolveOrder(c echo.Context) error {
	return s.operate(c, s.eng.ResolveDeadLetter)
}

// operate runs an operator action on a dead-lettered order. An order with
// no parked step is 409.
func (s *Server) operate(c echo.Context, action func(ctx context.Context, id, reason string) (*statemachine.Instance, error)) error {
	id, err := orderID(c)
	if err != nil {
		return err
	}
	reason, err := readReason(c)
	if err != nil {
		return err
	}
	in, err := action(c.Request().Context(), id, reason)
	if errors.Is(err, engine.ErrNotDeadLettered) {
		return problem(http.StatusConflict, codeNotDeadLettered, "Not dead-lettered",
			"the order has no step waiting for an operator; it is "+in.State)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, orders.NewResource(in))
}
