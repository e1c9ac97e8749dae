package providers

import (
	"context"
	"net/http"
)

func (r *ShipRequest) check(string) string {
	if r.OrderID == "" {
		return "order_id is required"
	}
	return checkItems(r.Items)
}

// ship serves POST /shipping/shipments: at once, or, for a client that
// prefers it while Faults.ShipmentDuration is set, as a long-running
// shipment (shipAsync).
func (s *Simulator) ship(ctx context.Context, c simCall[*ShipRequest]) (answer, error) {
	e := c.entry(c.req.OrderID)
	e.ID = simID("trk_", ProviderShipping, OpShip, c.key)
	e.Ref = c.req.ReservationID
	undeliverable := c.faults.customers[c.req.CustomerID] || c.faults.declinesAnySKU(c.req.Items)
	if c.faults.ShipmentDuration > 0 && prefersAsync(c.r.Header) {
		return s.shipAsync(ctx, c, e, undeliverable)
	}
	if undeliverable {
		var applied *LedgerEntry
		if c.faults.applyDeclines {
			applied = &e
		}
		return s.record(ctx, c.guard(), applied, declined(http.StatusUnprocessableEntity, CodeUndeliverable), "")
	}
	return s.record(ctx, c.guard(), &e, answer{status: http.StatusOK, body: idBody("tracking_number", e.ID)}, "")
}
