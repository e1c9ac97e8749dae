package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// Activity is the code a step runs: typically one idempotent call to an
// external service, keyed by <instance_id>:<operation>. It returns the step's
// results (stored on the instance, such as reservation_id) or an error.
//
// An error is retried with backoff unless it is permanent (see Permanent and
// providers.Error). An activity must tolerate running more than once for one
// attempt: steps run at least once, effects happen at most once.
type Activity func(ctx context.Context, in *statemachine.Instance) (map[string]string, error)

// Activities maps step names to their activities.
type Activities map[string]Activity

// PermanentError marks an error that no retry can fix.
type PermanentError struct{ Err error }

// Error implements error.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the engine does not retry it.
func Permanent(err error) error { return &PermanentError{Err: err} }

// classification tells how the engine treats an activity error.
type classification struct {
	// permanent: a decline, which says nothing was applied. Only a decline
	// settles a step as failed; every other answer is retried.
	permanent bool
	// ambiguous: the effect may exist.
	ambiguous bool
	// unexpected: a provider answer the contract does not name (a 401 after
	// a credential rotation, a gateway 404): retried, logged and counted.
	unexpected bool
	// provider and status name an unexpected answer in the metric.
	provider, status string
	retryAfter       time.Duration
}

func classify(err error) classification {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return classification{permanent: true}
	}
	var prov *providers.Error
	if errors.As(err, &prov) {
		c := classification{permanent: prov.Permanent(), ambiguous: prov.Ambiguous(), retryAfter: prov.RetryAfter}
		if prov.Unexpected() {
			c.unexpected, c.provider, c.status = true, prov.Provider, strconv.Itoa(prov.Status)
		}
		return c
	}
	// Anything else (a timeout, a panic, a bug) may have left an effect.
	return classification{ambiguous: true}
}

// callActivity runs an activity and turns a panic into an error.
func callActivity(ctx context.Context, a Activity, in *statemachine.Instance) (res map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("activity panicked: %v", r)
		}
	}()
	return a(ctx, in)
}
