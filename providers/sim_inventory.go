package providers

import (
	"context"
	"errors"
	"net/http"
)

// releaseBody is the body of a release; the reservation is in the path.
type releaseBody struct {
	OrderID string `json:"order_id"`
}

func (*releaseBody) check(string) string { return "" }

func (r *ReserveRequest) check(string) string {
	switch {
	case r.OrderID == "":
		return "order_id is required"
	case len(r.Items) == 0:
		return "items are required"
	}
	if problem := checkWarehouse(r.Warehouse); problem != "" {
		return problem
	}
	return checkItems(r.Items)
}

// checkItems returns what is wrong with items, or "".
func checkItems(items []Item) string {
	for _, it := range items {
		if it.SKU == "" || it.Qty <= 0 {
			return "every item needs a sku and a positive qty"
		}
	}
	return ""
}

// reserve serves POST /inventory/reservations, at the warehouse the body
// names (the default one when it names none), from that warehouse's stock.
func (s *Simulator) reserve(ctx context.Context, c simCall[*ReserveRequest]) (answer, error) {
	id := simID("res_", ProviderInventory, OpReserve, c.key)
	wh := c.req.Warehouse
	e := c.entry(c.req.OrderID)
	e.ID, e.Warehouse = id, wh
	entry, err := e.marshal()
	if err != nil {
		return answer{}, err
	}
	k := inventoryKeys
	keys := []string{k.ledger(), k.orderLedger(c.req.OrderID), k.stock(wh), k.initialStock(), k.reservation(id)}
	declines := c.faults.declinesAnySKU(c.req.Items) || c.faults.warehouses[wh]
	args := []any{
		reservedBody(id, wh), declined(http.StatusConflict, CodeOutOfStock).body, entry,
		c.req.OrderID, s.initialStock, flag(declines), flag(c.faults.applyDeclines), wh,
	}
	// Merge the lines of one SKU, keeping the first-seen order.
	units := make(map[string]int, len(c.req.Items))
	var skus []string
	for _, it := range c.req.Items {
		if _, seen := units[it.SKU]; !seen {
			skus = append(skus, it.SKU)
		}
		units[it.SKU] += it.Qty
	}
	for _, sku := range skus {
		args = append(args, sku, units[sku])
	}
	return s.runAnswer(ctx, reserveScript, c.guard(), keys, args...)
}

// releasedBody is the answer to every release.
const releasedBody = `{"released":true}`

// releaseTries bounds how often a release reads its reservation again when
// the reservation was written between its read and the script.
const releaseTries = 3

// release serves POST /inventory/reservations/{id}/release. It answers
// {"released":true} whether or not this call released anything; like every
// answer, it is stored as the key's first answer, so that a release can be
// held in progress like any other call. The units go back to the stock of
// the reservation's warehouse.
func (s *Simulator) release(ctx context.Context, c simCall[*releaseBody]) (answer, error) {
	id := c.r.PathValue("id")
	k := inventoryKeys
	for range releaseTries {
		// The order ID and warehouse of a reservation never change once
		// written, so they are read before the script, which must name the
		// keys they give; the script refuses them if the reservation was
		// written meanwhile. An unknown reservation is released by nothing,
		// and the order's ledger named is then never written.
		orderID, wh, err := s.reservationOf(ctx, id)
		if err != nil {
			return answer{}, err
		}
		if orderID == "" {
			orderID = c.req.OrderID
		}
		e := c.entry(orderID)
		e.ID, e.Warehouse = id, wh
		entry, err := e.marshal()
		if err != nil {
			return answer{}, err
		}
		keys := []string{k.reservation(id), k.stock(wh), k.ledger(), k.orderLedger(orderID)}
		a, err := s.runAnswer(ctx, releaseScript, c.guard(), keys, releasedBody, entry, flag(c.faults.dropCompensations), orderID, wh)
		if err != nil || a.status != 0 {
			return a, err
		}
	}
	return answer{}, errors.New("the reservation kept changing under its release")
}
