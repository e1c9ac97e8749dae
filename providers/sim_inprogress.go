package providers

import (
	"context"
	"crypto/rand"
	"net/http"
	"time"
)

// DefaultInProgressHold is how long a call held in progress waits before
// applying its effect when Faults.InProgressHold is 0: longer than the
// worker's default provider timeout (DefaultHTTPTimeout), so that the
// client gives up first, as it does with a slow real provider.
const DefaultInProgressHold = 6 * time.Second

// inProgressRetryAfter is the Retry-After of a 409 in progress.
const inProgressRetryAfter = time.Second

// heldApplyTimeout bounds the Redis work of a held call once its hold ends.
const heldApplyTimeout = 10 * time.Second

// inProgressBody is the answer to a call whose key another call holds.
var inProgressBody = declined(http.StatusConflict, CodeInProgress).body

// markerTTL is how long the in-progress marker of a hold lives: a little
// longer than the hold, so that it outlives a holder that applies its
// effect on time, and frees the key of one that died.
func markerTTL(hold time.Duration) time.Duration { return hold + hold/4 + 250*time.Millisecond }

// claim marks the key of a new call in progress (scripts/hold.lua), and
// returns the hold's token, or "" when the key has an answer already or
// another call holds it: the call is then served as usual.
func (s *Simulator) claim(ctx context.Context, g scriptGuard, hold time.Duration) (string, error) {
	token := rand.Text()
	held, err := holdScript.Run(ctx, s.rdb, g.keys[:2], token, markerTTL(hold).Milliseconds()).Int()
	if err != nil || held == 0 {
		return "", err
	}
	return token, nil
}

// serveHeld serves a call whose key it holds in progress: it waits for the
// hold, then applies the effect and answers, usually to a client that has
// given up meanwhile. Calls under the key meanwhile are answered 409 in
// progress (scripts/prelude.lua).
func serveHeld[R any](s *Simulator, w http.ResponseWriter, c simCall[R], apply effectFunc[R]) {
	s.holdFor(c.faults.InProgressHold)
	// A provider that received the call applies it whether or not anyone
	// still listens, so the Redis work outlives the request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), heldApplyTimeout)
	defer cancel()
	a, err := apply(ctx, c)
	if err != nil {
		s.internalError(w, c.r, c.provider+" "+c.op+" (held)", err)
		return
	}
	writeAnswer(w, a)
}

// holdFor waits for d, or until Close.
func (s *Simulator) holdFor(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
	}
}
