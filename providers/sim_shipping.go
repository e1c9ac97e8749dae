package providers

import (
	"context"
	"net/http"
)

func (r *ShipRequest) check() string {
	if r.OrderID == "" {
		return "order_id is required"
	}
	return checkItems(r.Items)
}

// ship serves POST /shipping/shipments.
func (s *Simulator) ship(ctx context.Context, c simCall[*ShipRequest]) (answer, error) {
	e := c.entry(ProviderShipping, OpShip, c.req.OrderID)
	if c.faults.customers[c.req.CustomerID] || c.faults.declinesAnySKU(c.req.Items) {
		return s.record(ctx, e, declined(http.StatusUnprocessableEntity, CodeUndeliverable))
	}
	e.ID = simID("trk_", ProviderShipping, OpShip, c.key)
	e.Ref = c.req.ReservationID
	return s.record(ctx, e, answer{status: http.StatusOK, body: idBody("tracking_number", e.ID)})
}
