package providers

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts that apply effects; each documents its KEYS, ARGV and
// return value in its header. Those that answer under an idempotency key
// start with prelude.lua, which settles repeated and held keys for all of
// them.
var (
	//go:embed scripts/prelude.lua
	preludeSrc string

	//go:embed scripts/record.lua
	recordSrc    string
	recordScript = redis.NewScript(preludeSrc + recordSrc)

	//go:embed scripts/reserve.lua
	reserveSrc    string
	reserveScript = redis.NewScript(preludeSrc + reserveSrc)

	//go:embed scripts/release.lua
	releaseSrc    string
	releaseScript = redis.NewScript(preludeSrc + releaseSrc)

	//go:embed scripts/refund.lua
	refundSrc    string
	refundScript = redis.NewScript(preludeSrc + refundSrc)

	//go:embed scripts/shipment.lua
	shipmentSrc    string
	shipmentScript = redis.NewScript(preludeSrc + shipmentSrc)

	//go:embed scripts/hold.lua
	holdSrc    string
	holdScript = redis.NewScript(holdSrc)
)

// answer is a provider's reply to one call.
type answer struct {
	status int
	body   string
}

// simCall is one mutating call, checked and decoded.
type simCall[R any] struct {
	// provider and op name the call.
	provider, op string
	// key is the Idempotency-Key.
	key string
	// hold is the token of the in-progress hold this call made, or "".
	hold string
	// req is the decoded body.
	req R
	// faults are the provider's faults for this call.
	faults *faultState
	// at is when the call arrived.
	at time.Time
	// r is the HTTP request.
	r *http.Request
}

// entry starts the ledger entry of c.
func (c simCall[R]) entry(orderID string) LedgerEntry {
	return LedgerEntry{Provider: c.provider, Op: c.op, Key: c.key, OrderID: orderID, At: c.at}
}

// guard returns the keys and arguments every script that answers under an
// idempotency key starts with (see scripts/prelude.lua).
func (c simCall[R]) guard() scriptGuard {
	k := keysOf(c.provider)
	return scriptGuard{
		provider: c.provider,
		keys:     []string{k.answer(c.op, c.key), k.inProgress(c.op, c.key)},
		args:     []any{c.hold, flag(c.faults.ignoreKeys), inProgressBody},
	}
}

// scriptGuard are the leading KEYS and ARGV of a script that starts with
// prelude.lua.
type scriptGuard struct {
	provider string
	keys     []string
	args     []any
}

// flag is a boolean as a script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// checker is a request body that can say what is wrong with it.
type checker interface {
	// check returns what is wrong with the request under the idempotency
	// key, or "".
	check(key string) string
}

// effectFunc applies one call's effect, at most once per idempotency key,
// and returns the answer to send.
type effectFunc[R any] func(ctx context.Context, c simCall[R]) (answer, error)

// effectHandler serves one mutating call: it checks the Idempotency-Key and
// the body, injects the provider's faults, and applies the effect.
func effectHandler[T any, R interface {
	*T
	checker
}](s *Simulator, provider, op string, apply effectFunc[R]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := simCall[R]{
			provider: provider, op: op, key: r.Header.Get("Idempotency-Key"),
			req: new(T), faults: s.faultsOf(provider), at: time.Now().UTC(), r: r,
		}
		if c.key == "" {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "missing Idempotency-Key header")
			return
		}
		if !decodeBody(w, r, c.req) {
			return
		}
		if problem := c.req.check(c.key); problem != "" {
			writeError(w, http.StatusBadRequest, CodeBadRequest, problem)
			return
		}
		ctx := r.Context()
		if s.callLog {
			end := logCall(s, ctx, c)
			// The call is over when its answer is written or its caller
			// hangs up, whichever comes first.
			defer end()
			defer context.AfterFunc(ctx, end)()
		}
		if !s.wait(ctx, c.faults.Latency) {
			abortResponse(w)
			return
		}
		switch {
		case s.rand.hit(c.faults.RateLimitRate):
			w.Header().Set("Retry-After", formatRetryAfter(c.faults.RetryAfter))
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, "")
			return
		case s.rand.hit(c.faults.FailureRate):
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "")
			return
		case s.rand.hit(c.faults.StrayRate):
			s.writeStray(w)
			return
		}
		if s.rand.hit(c.faults.InProgressRate) {
			token, err := s.claim(ctx, c.guard(), c.faults.InProgressHold)
			if err != nil {
				s.internalError(w, r, provider+" "+op, err)
				return
			}
			if token != "" {
				c.hold = token
				serveHeld(s, w, c, apply)
				return
			}
		}
		a, err := apply(ctx, c)
		if err != nil {
			s.internalError(w, r, provider+" "+op, err)
			return
		}
		if s.rand.hit(c.faults.TimeoutRate) {
			s.wait(ctx, c.faults.TimeoutHold)
			abortResponse(w)
			return
		}
		writeAnswer(w, a)
	}
}

// writeAnswer sends a. A 409 in progress carries Retry-After, as a real
// provider's does.
func writeAnswer(w http.ResponseWriter, a answer) {
	if a.status == http.StatusConflict && a.body == inProgressBody {
		w.Header().Set("Retry-After", formatRetryAfter(inProgressRetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// wait waits for d, and reports false when ctx ended first. Close ends the
// wait early, reporting true.
func (s *Simulator) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.done:
		return true
	case <-t.C:
		return true
	}
}

// abortResponse drops the connection without an answer, as a lost response
// looks to the client.
func abortResponse(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// record answers a call once per idempotency key with a, appending e to
// the ledger unless e is nil (the call applies nothing). With e, it also
// sets the fields of the hash named by with, if any, as field and value
// pairs.
func (s *Simulator) record(ctx context.Context, g scriptGuard, e *LedgerEntry, a answer, with string, fields ...any) (answer, error) {
	// Without an entry the script writes no ledger, so the order's ledger
	// named is any.
	entry, orderID := "", ""
	if e != nil {
		var err error
		if entry, err = e.marshal(); err != nil {
			return answer{}, err
		}
		orderID = e.OrderID
	}
	k := keysOf(g.provider)
	keys := []string{k.ledger(), k.orderLedger(orderID)}
	args := []any{a.status, a.body, entry}
	if with != "" {
		keys = append(keys, with)
		args = append(args, fields...)
	}
	return s.runAnswer(ctx, recordScript, g, keys, args...)
}

// runAnswer runs a script that starts with prelude.lua and returns
// {status, body}; keys and args follow the guard's.
func (s *Simulator) runAnswer(ctx context.Context, script *redis.Script, g scriptGuard, keys []string, args ...any) (answer, error) {
	keys = append(slices.Clip(g.keys), keys...)
	args = append(slices.Clip(g.args), args...)
	res, err := script.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return answer{}, err
	}
	if len(res) == 2 {
		status, ok1 := res[0].(int64)
		body, ok2 := res[1].(string)
		if ok1 && ok2 {
			return answer{status: int(status), body: body}, nil
		}
	}
	return answer{}, fmt.Errorf("script answered %v, want {status, body}", res)
}

// simID derives the ID of an effect from its idempotency key, so that every
// attempt computes the same ID and no counter is needed.
func simID(prefix, provider, op, key string) string {
	sum := sha256.Sum256([]byte(provider + "\x00" + op + "\x00" + key))
	return prefix + hex.EncodeToString(sum[:10])
}

// idBody is the body of a success carrying one ID.
func idBody(field, id string) string {
	b, _ := json.Marshal(map[string]string{field: id})
	return string(b)
}

// declined is the answer of a permanent business failure.
func declined(status int, code string) answer {
	b, _ := json.Marshal(errorBody{Error: code})
	return answer{status: status, body: string(b)}
}
