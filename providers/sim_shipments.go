package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// prefersAsync reports whether a request's Prefer headers ask for
// respond-async (RFC 7240).
func prefersAsync(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			token, _, _ := strings.Cut(pref, ";")
			if strings.EqualFold(strings.TrimSpace(token), preferAsync) {
				return true
			}
		}
	}
	return false
}

// shipmentBody is the JSON of a long-running shipment.
type shipmentBody struct {
	ShipmentID     string `json:"shipment_id"`
	Status         string `json:"status"`
	Progress       int    `json:"progress"`
	TrackingNumber string `json:"tracking_number,omitempty"`
	Error          string `json:"error,omitempty"`
}

// shipAsync starts a long-running shipment (scripts/shipment.lua) and
// answers 202 with it. Its record keeps the creation time and duration, so
// that every simulator on the Redis reports the same progress. An
// undeliverable shipment is accepted too, and ends failed, with no ledger
// entry: nothing leaves the warehouse. e is the ledger entry of a
// shipment that is not declined.
func (s *Simulator) shipAsync(ctx context.Context, c simCall[*ShipRequest], e LedgerEntry, undeliverable bool) (answer, error) {
	id := simID("shp_", ProviderShipping, OpShip, c.key)
	entry := ""
	if !undeliverable || c.faults.applyDeclines {
		var err error
		if entry, err = e.marshal(); err != nil {
			return answer{}, err
		}
	}
	body, err := json.Marshal(shipmentBody{ShipmentID: id, Status: ShipmentPending})
	if err != nil {
		return answer{}, err
	}
	k := keysOf(ProviderShipping)
	keys := []string{k.ledger(), k.orderLedger(c.req.OrderID), k.shipment(id)}
	// The shipment starts when it is applied, which a hold in progress
	// delays past the call's arrival.
	args := []any{
		http.StatusAccepted, string(body), entry,
		"order_id", c.req.OrderID, "tracking_number", e.ID,
		"created_ms", time.Now().UnixMilli(), "duration_ms", c.faults.ShipmentDuration.Milliseconds(),
		"undeliverable", flag(undeliverable),
	}
	return s.runAnswer(ctx, shipmentScript, c.guard(), keys, args...)
}

// serveShipment serves GET /shipping/shipments/{id}: the shipment's status
// and progress now, from its record; 404 not_found for an unknown one.
func (s *Simulator) serveShipment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := s.rdb.HGetAll(r.Context(), keysOf(ProviderShipping).shipment(id)).Result()
	if err != nil {
		s.internalError(w, r, "reading shipment", err)
		return
	}
	if len(rec) == 0 {
		writeError(w, http.StatusNotFound, CodeNotFound, "unknown shipment")
		return
	}
	created, err1 := strconv.ParseInt(rec["created_ms"], 10, 64)
	duration, err2 := strconv.ParseInt(rec["duration_ms"], 10, 64)
	if err1 != nil || err2 != nil {
		s.internalError(w, r, "reading shipment", fmt.Errorf("shipment %s has a broken record: %v", id, rec))
		return
	}
	b := shipmentBody{ShipmentID: id}
	b.Status, b.Progress = shipmentAt(time.UnixMilli(created), time.Duration(duration)*time.Millisecond, rec["undeliverable"] == "1", time.Now())
	switch b.Status {
	case ShipmentDelivered:
		b.TrackingNumber = rec["tracking_number"]
	case ShipmentFailed:
		b.Error = CodeUndeliverable
	}
	writeJSON(w, http.StatusOK, b)
}

// readHandler serves a read of provider's: it injects the faults that fit
// a call that changes nothing (latency, 429, 503, stray answers, lost
// answers), never holds it in progress, and then serves it.
func readHandler(s *Simulator, provider string, serve http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := s.faultsOf(provider)
		if !s.wait(r.Context(), f.Latency) {
			abortResponse(w)
			return
		}
		switch {
		case s.rand.hit(f.RateLimitRate):
			w.Header().Set("Retry-After", formatRetryAfter(f.RetryAfter))
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, "")
		case s.rand.hit(f.FailureRate):
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "")
		case s.rand.hit(f.StrayRate):
			s.writeStray(w)
		case s.rand.hit(f.TimeoutRate):
			s.wait(r.Context(), f.TimeoutHold)
			abortResponse(w)
		default:
			serve(w, r)
		}
	}
}
