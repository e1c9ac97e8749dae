package statemachine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// IdempotencyOutcome is what claiming a client Idempotency-Key found.
type IdempotencyOutcome string

// The outcomes of BeginIdempotent.
const (
	// IdempotencyNew: the key is now claimed by this request.
	IdempotencyNew IdempotencyOutcome = "new"
	// IdempotencyMismatch: the key was used with a different body.
	IdempotencyMismatch IdempotencyOutcome = "mismatch"
	// IdempotencyInFlight: a request with the key is still running.
	IdempotencyInFlight IdempotencyOutcome = "inflight"
	// IdempotencyDone: a request with the key completed; replay it.
	IdempotencyDone IdempotencyOutcome = "done"
)

// HashIdempotencyKey turns a client's Idempotency-Key into the fixed-size
// token used in the Redis key.
func HashIdempotencyKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// BeginIdempotent claims key for a request with the given body fingerprint
// that would create instance id. It returns the outcome and the instance ID
// the key belongs to. The claim lapses after inFlight unless ended.
func (s *Store) BeginIdempotent(ctx context.Context, key, fingerprint, id string, inFlight time.Duration) (IdempotencyOutcome, string, error) {
	res, err := s.sc.idemBegin.Run(ctx, s.rdb, []string{IdempotencyKey(HashIdempotencyKey(key))},
		fingerprint, id, inFlight.Milliseconds()).StringSlice()
	if err != nil {
		return "", "", fmt.Errorf("claiming idempotency key: %w", err)
	}
	return IdempotencyOutcome(res[0]), res[1], nil
}

// EndIdempotent settles a claim: done keeps it for replays until keep
// passes; otherwise it is forgotten so that a retry may run.
func (s *Store) EndIdempotent(ctx context.Context, key, fingerprint string, done bool, keep time.Duration) error {
	mode := "abort"
	if done {
		mode = "done"
	}
	err := s.sc.idemEnd.Run(ctx, s.rdb, []string{IdempotencyKey(HashIdempotencyKey(key))},
		fingerprint, mode, keep.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("settling idempotency key: %w", err)
	}
	return nil
}
