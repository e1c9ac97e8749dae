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
	// CodeInProgress: a request under the same Idempotency-Key is still
	// being processed; retry later (409, with Retry-After).
	CodeInProgress = "idempotency_key_in_use"
	// CodeUnauthorized: the credentials were refused (401), as after a
	// rotation. The simulators send it as a stray answer.
	CodeUnauthorized = "unauthorized"
	// CodeNotFound: no such route or resource (404), as from a gateway.
	// The simulators send it as a stray answer.
	CodeNotFound = "not_found"
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
// help and whether the effect may have been applied anyway. Each failure is
// exactly one of: a decline (Decline), a retryable refusal that applied
// nothing (408, 429), or ambiguous (Ambiguous: no answer, 5xx, in progress,
// or Unexpected).
type Error struct {
	// Provider is "inventory", "payment", "shipping" or "risk".
	Provider string
	// Op is the operation, such as "charge", or OpTrack for following a
	// shipment.
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

// Decline reports whether the answer is one of the three business refusals
// of PROVIDERS.md, after which the provider applied nothing: inventory's
// reserve 409 out_of_stock, payment's charge 402 card_declined, shipping's
// ship 422 undeliverable. Each is known by provider, operation, status and
// code together: a 409 out_of_stock to a release, or a 409 without the
// code, says nothing about the effect and is no decline.
func (e *Error) Decline() bool {
	switch {
	case e.Provider == ProviderInventory && e.Op == OpReserve:
		return e.Status == http.StatusConflict && e.Code == CodeOutOfStock
	case e.Provider == ProviderPayment && e.Op == OpCharge:
		return e.Status == http.StatusPaymentRequired && e.Code == CodeCardDeclined
	case e.Provider == ProviderShipping && e.Op == OpShip:
		return e.Status == http.StatusUnprocessableEntity && e.Code == CodeUndeliverable
	}
	return false
}

// Permanent reports whether no retry can change the answer. Only a decline
// is permanent: any other failure may be the provider's passing trouble, and
// a retry under the same key is what settles it.
func (e *Error) Permanent() bool { return e.Decline() }

// InProgress reports whether the provider is still working on a request
// under this key, perhaps an earlier attempt that timed out on our side
// (409 idempotency_key_in_use). Retry later with the same key, honouring
// RetryAfter; the effect may already exist.
func (e *Error) InProgress() bool {
	return e.Status == http.StatusConflict && e.Code == CodeInProgress
}

// Unexpected reports whether the provider answered something the contract
// does not name: neither a success, a decline nor in-progress, and no 408,
// 429 or 5xx. A 401 after a credential rotation, a gateway's 404 or 400, a
// 409 or 422 without the decline code: each says nothing about whether the
// effect happened, so it is ambiguous, and worth logging loudly.
func (e *Error) Unexpected() bool {
	switch {
	case e.Status == 0, e.Status >= 200 && e.Status <= 299:
		return false
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests, e.Status >= 500:
		return false
	}
	return !e.Decline() && !e.InProgress()
}

// Ambiguous reports whether the effect may have been applied although the
// call failed: no answer came (Status 0, which includes a success whose
// answer could not be read), the provider answered 5xx, is still in
// progress, or answered something unexpected. A step whose outcome is
// ambiguous must be settled before it can be compensated. A decline, a 408
// and a 429 are not ambiguous: the provider applied nothing.
func (e *Error) Ambiguous() bool {
	return e.Status == 0 || e.Status >= 500 || e.InProgress() || e.Unexpected()
}

// IsDecline reports whether err is a provider's decline (see
// Error.Decline).
func IsDecline(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Decline()
}

// IsPermanent reports whether err is a permanent provider failure, which
// only a decline is.
func IsPermanent(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Permanent()
}

// IsInProgress reports whether err says the provider is still working on
// the key (see Error.InProgress).
func IsInProgress(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.InProgress()
}

// IsUnexpected reports whether err is an answer the contract does not name
// (see Error.Unexpected).
func IsUnexpected(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Unexpected()
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
