package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// Problem is an RFC 9457 problem detail, the body of every error response.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists the fields that failed validation.
	Errors []orders.FieldError `json:"errors,omitempty"`
	// RetryAfter, in seconds, is also sent as the Retry-After header.
	RetryAfter int `json:"-"`
}

// Error implements error, so handlers can return a *Problem.
func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// ProblemType builds the type URI of a problem; docs/API.md documents each.
func ProblemType(code string) string { return "https://orderflow.dev/problems/" + code }

// The problem codes, each with one status.
const (
	codeValidation    = "validation"
	codeMalformed     = "malformed-body"
	codeTooLarge      = "body-too-large"
	codeMediaType     = "unsupported-media-type"
	codeNotFound      = "not-found"
	codeConflict      = "conflict"
	codeInFlight      = "request-in-flight"
	codeNotCancelable = "not-cancellable"
	codeKeyReused     = "idempotency-key-reused"
	codeUnavailable   = "unavailable"
	codeInternal      = "internal"
	codeHTTP          = "http"
)

func problem(status int, code, title, detail string) *Problem {
	return &Problem{Type: ProblemType(code), Title: title, Status: status, Detail: detail}
}

func validationProblem(errs []orders.FieldError) *Problem {
	p := problem(http.StatusBadRequest, codeValidation, "Validation failed", "the request has invalid fields; see errors")
	p.Errors = errs
	return p
}

func unavailable(detail string) *Problem {
	p := problem(http.StatusServiceUnavailable, codeUnavailable, "Service unavailable", detail)
	p.RetryAfter = 1
	return p
}

// toProblem is the one table from errors to HTTP answers. Store errors that
// are not conditions callers branch on mean Redis could not be reached or
// answered with an error: they are 503, never 500, and nothing half-written
// is visible (see engine.Start).
func toProblem(err error, log *slog.Logger) *Problem {
	var p *Problem
	var he *echo.HTTPError
	var ve *orders.ValidationError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &ve):
		return validationProblem(ve.Errors)
	case errors.Is(err, statemachine.ErrNotFound):
		return problem(http.StatusNotFound, codeNotFound, "Not found", "no order with this order_id")
	case errors.Is(err, engine.ErrInputMismatch):
		return problem(http.StatusConflict, codeConflict, "Conflict", "an order with this order_id exists with different content")
	case errors.Is(err, statemachine.ErrBadCursor):
		return validationProblem([]orders.FieldError{{Field: "cursor", Message: "is not a cursor this API issued"}})
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok {
			msg = s
		}
		return problem(he.Code, codeHTTP, http.StatusText(he.Code), msg)
	default:
		log.Error("request failed: answering 503", "err", err)
		return unavailable("the order store is unavailable; retry later")
	}
}

// writeProblem sends p as application/problem+json.
func writeProblem(c echo.Context, p *Problem) error {
	if p.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.Blob(p.Status, "application/problem+json", b)
}

// errorHandler is Echo's HTTPErrorHandler: every error leaves as a problem.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		if werr := writeProblem(c, toProblem(err, log)); werr != nil {
			log.Warn("writing problem", "err", werr)
		}
	}
}
