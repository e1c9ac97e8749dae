package api

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// List limits from API.md.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

var statePattern = regexp.MustCompile(`^[a-z_]{1,64}$`)

// orderID reads and checks the :order_id path parameter.
func orderID(c echo.Context) (string, error) {
	id := c.Param("order_id")
	if !orders.ValidID(id) {
		return "", validationProblem([]orders.FieldError{{Field: "order_id", Message: "must match [A-Za-z0-9._:-]{1,128}"}})
	}
	return id, nil
}

// getOrder is GET /v1/orders/{order_id}. It only reads. With ?wait=<duration>
// (at most 30s) it answers when the order is finished or the wait is over,
// whichever comes first: a client can wait for an order without polling.
func (s *Server) getOrder(c echo.Context) error {
	id, err := orderID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if v := c.QueryParam("wait"); v != "" {
		wait, err := time.ParseDuration(v)
		if err != nil || wait < 0 || wait > MaxWait {
			return validationProblem([]orders.FieldError{{Field: "wait", Message: "must be a duration from 0s to 30s, such as 10s"}})
		}
		if err := s.waitFinished(ctx, id, wait); err != nil {
			return err
		}
	}
	in, err := s.store.Load(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, orders.NewResource(in))
}

// waitFinished returns when order id is finished, wait has passed, or the
// client went away.
func (s *Server) waitFinished(ctx context.Context, id string, wait time.Duration) error {
	if wait == 0 {
		return nil
	}
	done, stop, err := s.waiters.add(ctx, id)
	if err != nil {
		return err
	}
	defer stop()
	status, err := s.store.Watch(ctx, id)
	if err != nil || status.Terminal() {
		return err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var recheck <-chan time.Time
	if every := s.waiters.recheck(); every > 0 {
		tick := time.NewTicker(every)
		defer tick.Stop()
		recheck = tick.C
	}
	for {
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		case <-recheck:
			// The announcement may have been lost: read the status.
			if in, err := s.store.Load(ctx, id); err != nil || !in.Status.Terminal() {
				continue
			}
		}
		return nil
	}
}

// historyResponse is the body of GET /v1/orders/{order_id}/history.
type historyResponse struct {
	OrderID string               `json:"order_id"`
	Events  []statemachine.Event `json:"events"`
}

// getHistory is GET /v1/orders/{order_id}/history.
func (s *Server) getHistory(c echo.Context) error {
	id, err := orderID(c)
	if err != nil {
		return err
	}
	evs, err := s.store.History(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, historyResponse{OrderID: id, Events: evs})
}

// listResponse is the body of GET /v1/orders.
type listResponse struct {
	Orders     []orders.Resource `json:"orders"`
	NextCursor string            `json:"next_cursor"`
}

// listOrders is GET /v1/orders?status=&state=&version=&priority=&customer_id=
// &dead_letter=&limit=&cursor=, newest first.
func (s *Server) listOrders(c echo.Context) error {
	q := statemachine.ListQuery{Limit: defaultListLimit, Cursor: c.QueryParam("cursor")}
	var errs []orders.FieldError
	if v := c.QueryParam("status"); v != "" {
		if !statemachine.Status(v).Valid() {
			errs = append(errs, orders.FieldError{Field: "status", Message: "must be running, completed, failed or cancelled"})
		}
		q.Status = statemachine.Status(v)
	}
	if v := c.QueryParam("state"); v != "" {
		if !statePattern.MatchString(v) {
			errs = append(errs, orders.FieldError{Field: "state", Message: "must be a state name, such as charging"})
		}
		q.State = v
	}
	if v := c.QueryParam("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, orders.FieldError{Field: "version", Message: "must be a workflow version, such as 2"})
		}
		q.Version = n
	}
	if v := c.QueryParam("priority"); v != "" {
		p, err := statemachine.ParsePriority(v)
		if err != nil {
			errs = append(errs, orders.FieldError{Field: "priority", Message: "must be high, normal or low"})
		}
		q.Priority = p
	}
	if v := c.QueryParam("customer_id"); v != "" {
		if len(v) > 128 {
			errs = append(errs, orders.FieldError{Field: "customer_id", Message: "must be 1 to 128 characters"})
		}
		q.InputField, q.InputValue = "customer_id", v
	}
	if v := c.QueryParam("dead_letter"); v != "" {
		dl, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, orders.FieldError{Field: "dead_letter", Message: "must be true or false"})
		}
		q.DeadLetter = dl
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			errs = append(errs, orders.FieldError{Field: "limit", Message: "must be an integer from 1 to 500"})
		}
		q.Limit = n
	}
	if len(errs) > 0 {
		return validationProblem(errs)
	}
	insts, next, err := s.store.List(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := listResponse{Orders: make([]orders.Resource, 0, len(insts)), NextCursor: next}
	for _, in := range insts {
		out.Orders = append(out.Orders, orders.NewResource(in))
	}
	return c.JSON(http.StatusOK, out)
}
