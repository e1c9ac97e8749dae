package providers

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The error codes providers answer with, in the body {"error": "<code>"}.
const (
	// CodeOutOfStock: inventory cannot reserve the items (409).
	CodeOutOfStock = "out_of_stock"
	// CodeCardDeclined: payment declined the charge (402).
	CodeCardDeclined = "card_declined"
	// CodeUndeliverable: shipping cannot deliver the order (422).
	CodeUndeliverable = "undeliverable"
	// CodeBadRequest: the request was malformed or lacked its
	// Idempotency-Key (400).
	CodeBadRequest = "bad_request"
	// CodeRateLimited: too many requests; see Retry-After (429).
	CodeRateLimited = "rate_limited"
	// CodeUnavailable: the provider failed before applying anything (503).
	CodeUnavailable = "unavailable"
	// CodeInternal: the provider failed, perhaps after applying the effect
	// (500).
	CodeInternal = "internal_error"
)

// Error is a provider call that did not succeed. It says whether retrying can
// help and whether the effect may have been applied anyway.
type Error struct {
	// Provider is "inventory", "payment" or "shipping".
	Provider string
	// Op is the operation, such as "charge".
	Op string
	// Status is the HTTP status, or 0 when no answer came (timeout,
	// connection error) or a success answer could not be read.
	Status int
	// Code is the provider's error code from the body, such as
	// "card_declined", when there is one.
	Code string
	// RetryAfter is the provider's Retry-After hint, or 0.
	RetryAfter time.Duration
	// Err is the underlying transport error, when there is one.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	switch {
	case e.Status == 0 && e.Err != nil:
		return fmt.Sprintf("%s %s: %v", e.Provider, e.Op, e.Err)
	case e.Code != "":
		return fmt.Sprintf("%s %s: %d %s", e.Provider, e.Op, e.Status, e.Code)
	default:
		return fmt.Sprintf("%s %s: %d", e.Provider, e.Op, e.Status)
	}
}

// Unwrap returns the transport error.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the answer is a business failure that no retry
// can change: 402, 409, 422, and any status that is neither success nor
// retryable.
func (e *Error) Permanent() bool {
	switch {
	case e.Status == 0:
		return false
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests:
		return false
	case e.Status >= 500:
		return false
	default:
		return true
	}
}

// Ambiguous reports whether the effect may have been applied although the
// call failed: no answer came, or the provider answered 5xx. A step whose
// outcome is ambiguous must be settled before it can be compensated.
func (e *Error) Ambiguous() bool { return e.Status == 0 || e.Status >= 500 }

// IsPermanent reports whether err is a permanent provider failure.
func IsPermanent(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Permanent()
}

// IsAmbiguous reports whether err leaves the effect unknown. Errors that are
// not provider errors (a cancelled context, say) count as ambiguous.
func IsAmbiguous(err error) bool {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Ambiguous()
	}
	return err != nil
}

// RetryAfterOf returns the Retry-After hint carried by err, or 0.
func RetryAfterOf(err error) time.Duration {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	return 0
}
