package statemachine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// IdempotencyOutcome is what binding a client Idempotency-Key found.
type IdempotencyOutcome string

// The outcomes of BindIdempotencyKey.
const (
	// IdempotencyNew: the key is now bound to this request's instance.
	IdempotencyNew IdempotencyOutcome = "new"
	// IdempotencySame: the key was bound earlier, with the same body; the
	// request is a retry or a concurrent twin, and goes on with the bound
	// instance.
	IdempotencySame IdempotencyOutcome = "same"
	// IdempotencyMismatch: the key was bound with a different body.
	IdempotencyMismatch IdempotencyOutcome = "mismatch"
)

// HashIdempotencyKey turns a client's Idempotency-Key into the fixed-size
// token used in the Redis key.
func HashIdempotencyKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// HashScopedIdempotencyKey hashes key as sent by the caller named scope
// (the API token's name, "" without authentication): two callers sending
// one key make two requests.
func HashScopedIdempotencyKey(scope, key string) string {
	return HashIdempotencyKey(scope + "\x00" + key)
}

// BindIdempotencyKey binds the key whose hash is keyHash (see
// HashScopedIdempotencyKey) to a request with the given body fingerprint
// that would create instance id, unless the key is bound already, and keeps
// the binding for ttl. It returns the outcome and the instance the key is
// bound to: id when new, the earlier request's instance otherwise.
//
// The binding is written before the instance is started and never removed
// when the request fails: starting an instance is idempotent on its ID, so
// every retry converges on the bound instance however the first attempt
// ended.
func (s *Store) BindIdempotencyKey(ctx context.Context, keyHash, fingerprint, id string, ttl time.Duration) (IdempotencyOutcome, string, error) {
	var cmd *redis.Cmd
	var durable *durableWait
	err := s.pipelined(ctx, func(p redis.Pipeliner) {
		cmd = s.sc.idemBind.EvalSha(ctx, p, []string{IdempotencyKey(keyHash)}, fingerprint, id, ttl.Milliseconds())
		// The binding must outlive a failover before the order it names is
		// created, or a retry could bind the key to a second order.
		durable = s.awaitDurable(ctx, p)
	})
	var res []string
	if err == nil {
		err = durable.err()
	}
	if err == nil {
		res, err = cmd.StringSlice()
	}
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected answer %q", res)
	}
	if err != nil {
		return "", "", fmt.Errorf("binding idempotency key: %w", err)
	}
	return IdempotencyOutcome(res[0]), res[1], nil
}

// ReadBindings returns, in one round trip, the instance each key hash is
// bound to, or "" where the binding is gone (it expired).
func ReadBindings(ctx context.Context, rdb redis.Cmdable, keyHashes []string) ([]string, error) {
	if len(keyHashes) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keyHashes))
	sent, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range keyHashes {
			cmds[i] = p.HGet(ctx, IdempotencyKey(h), "id")
		}
		return nil
	})
	if err := firstErr(sent, err); err != nil {
		return nil, fmt.Errorf("reading idempotency keys: %w", err)
	}
	out := make([]string, len(keyHashes))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
