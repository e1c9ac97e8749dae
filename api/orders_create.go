package api

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// HeaderIdempotencyKey and HeaderReplayed are the idempotency headers.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderReplayed       = "Idempotent-Replayed"
)

// createOrder is POST /v1/orders.
func (s *Server) createOrder(c echo.Context) error {
	key := c.Request().Header.Get(HeaderIdempotencyKey)
	_, keySent := c.Request().Header[http.CanonicalHeaderKey(HeaderIdempotencyKey)]
	if keySent && !validIdempotencyKey(key) {
		return validationProblem([]orders.FieldError{{Field: "Idempotency-Key", Message: "must be 1 to 255 printable ASCII characters"}})
	}
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	var req orders.Request
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	input, err := req.Validate()
	if err != nil {
		return err
	}
	fp := req.Fingerprint()
	id := req.OrderID
	if id == "" {
		id = newOrderID()
	}
	ctx := c.Request().Context()

	var keyHash string
	if keySent {
		// The key is bound for good before the order starts, and the order
		// started under the bound ID: whatever became of an earlier attempt
		// (a timeout, a 503, a Redis restart), its retry and any concurrent
		// twin converge on that one order.
		keyHash = statemachine.HashScopedIdempotencyKey(TokenName(ctx), key)
		outcome, bound, err := s.store.BindIdempotencyKey(ctx, keyHash, fp, id, s.cfg.IdempotencyTTL)
		if err != nil {
			return err
		}
		if outcome == statemachine.IdempotencyMismatch {
			return problem(http.StatusUnprocessableEntity, codeKeyReused, "Idempotency-Key reused",
				"this Idempotency-Key was already used with a different body")
		}
		if bound != "" {
			id = bound
		}
	}

	res, err := s.start(ctx, id, input, fp, keyHash, req.PriorityOf())
	if err != nil {
		return err
	}
	if res.Replayed {
		return s.replay(c, id)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/orders/"+id)
	return c.JSON(http.StatusAccepted, orders.NewResource(res.Instance))
}

func (s *Server) start(ctx context.Context, id string, input orders.Input, fp, keyHash string, prio statemachine.Priority) (engine.StartResult, error) {
	raw, err := json.Marshal(input)
	if err != nil {
		return engine.StartResult{}, err
	}
	return s.eng.Start(ctx, engine.StartRequest{
		ID: id, Workflow: statemachine.OrderWorkflow, Input: raw, Fingerprint: fp, KeyHash: keyHash, Priority: prio,
	})
}

// replay answers a repeated request with the order as it is now.
func (s *Server) replay(c echo.Context, id string) error {
	in, err := s.store.Load(c.Request().Context(), id)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, "/v1/orders/"+id)
	h.Set(HeaderReplayed, "true")
	return c.JSON(http.StatusAccepted, orders.NewResource(in))
}

// validIdempotencyKey: 1-255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newOrderID returns a random order ID such as "ord-mfrggzdfmztwq2lk".
func newOrderID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "ord-" + strings.ToLower(idEncoding.EncodeToString(b))
}
