package statemachine

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no such instance.
	ErrNotFound = errors.New("instance not found")
	// ErrTerminal: the instance has finished.
	ErrTerminal = errors.New("instance is terminal")
	// ErrStale: a compare-and-set lost; another writer moved the instance.
	ErrStale = errors.New("stale write")
	// ErrLeased: another worker holds the instance's lease.
	ErrLeased = errors.New("instance is leased by another worker")
)

// StaleError says where the instance really is after a lost compare-and-set.
type StaleError struct {
	State      string
	Rev        int64
	LeaseToken string
	LeaseUntil time.Time
}

// Error implements error.
func (e *StaleError) Error() string {
	return fmt.Sprintf("stale write: instance is in %q at revision %d", e.State, e.Rev)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// LeasedError says until when another worker holds the lease.
type LeasedError struct{ Until time.Time }

// Error implements error.
func (e *LeasedError) Error() string {
	return fmt.Sprintf("instance is leased until %s", e.Until.Format(time.RFC3339Nano))
}

// Is makes errors.Is(err, ErrLeased) true.
func (e *LeasedError) Is(target error) bool { return target == ErrLeased }
