package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/flowcontrol"
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
	// Challenge is sent as the WWW-Authenticate header.
	Challenge string `json:"-"`
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
	codeNotCancelable = "not-cancellable"
	// codeSignalRefused: a signal the order's state does not take.
	codeSignalRefused = "signal-not-accepted"
	// codeNotDeadLettered: retry or resolve of an order with no parked step.
	codeNotDeadLettered = "not-dead-lettered"
	codeKeyReused       = "idempotency-key-reused"
	codeUnavailable     = "unavailable"
	codeUnauthorized    = "unauthorized"
	codeForbidden       = "forbidden"
	codeCrossSite       = "cross-site-request"
	codeHostRefused     = "host-not-allowed"
	codeRateLimited     = "rate-limited"
	codeOverloaded      = "overloaded"
	codeInternal        = "internal"
	codeHTTP            = "http"
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

// unauthorized answers a request without a valid bearer token. reason is
// an RFC 6750 error code ("" when no token was sent); the detail never
// repeats what the client sent.
func unauthorized(reason, detail string) *Problem {
	p := problem(http.StatusUnauthorized, codeUnauthorized, "Unauthorized", detail)
	p.Challenge = bearerChallenge(reason, "")
	return p
}

// forbidden answers a valid token that lacks the scope a route needs.
func forbidden(scope Scope) *Problem {
	p := problem(http.StatusForbidden, codeForbidden, "Forbidden", "the token lacks the scope "+string(scope))
	p.Challenge = bearerChallenge("insufficient_scope", scope)
	return p
}

// unsupportedMediaType answers a body that is not JSON, or a Content-Type
// that a web page could send across sites.
func unsupportedMediaType(ct string) *Problem {
	return problem(http.StatusUnsupportedMediaType, codeMediaType, "Unsupported media type",
		fmt.Sprintf("Content-Type must be application/json, got %q", ct))
}

// crossSite answers a request a browser sent on behalf of another site.
func crossSite() *Problem {
	return problem(http.StatusForbidden, codeCrossSite, "Cross-site request refused",
		"this API does not accept requests that a browser sends on behalf of another site")
}

// hostRefused answers a request whose Host is not this machine's (DNS
// rebinding).
func hostRefused() *Problem {
	return problem(http.StatusForbidden, codeHostRefused, "Host not allowed",
		"without API tokens this API answers only requests addressed to localhost or a loopback address")
}

// rateLimited answers a token over its rate limit.
func rateLimited(retryAfter time.Duration) *Problem {
	p := problem(http.StatusTooManyRequests, codeRateLimited, "Too many requests",
		"this token is over its rate limit; retry after Retry-After seconds")
	p.RetryAfter = retrySeconds(retryAfter)
	return p
}

// overloaded answers a new order while the workflow queue's backlog is over
// its bound. Nothing was written.
func overloaded() *Problem {
	p := problem(http.StatusServiceUnavailable, codeOverloaded, "Overloaded",
		"too many orders are waiting to run; the order was not accepted, retry later")
	p.RetryAfter = 1
	return p
}

// retrySeconds rounds d up to whole seconds, at least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
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
	case errors.Is(err, flowcontrol.ErrUnknownProvider):
		return problem(http.StatusNotFound, codeNotFound, "Not found", "no provider with this name")
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
	if p.Challenge != "" {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, p.Challenge)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.Blob(p.Status, "application/problem+json", b)
}

// requestLog adds the name of the request's token, if any, to log.
func requestLog(log *slog.Logger, c echo.Context) *slog.Logger {
	if name := TokenName(c.Request().Context()); name != "" {
		return log.With("token", name)
	}
	return log
}

// errorHandler is Echo's HTTPErrorHandler: every error leaves as a problem.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		log := requestLog(log, c)
		if werr := writeProblem(c, toProblem(err, log)); werr != nil {
			log.Warn("writing problem", "err", werr)
		}
	}
}
