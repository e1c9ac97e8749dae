package providers

import (
	"context"
	"errors"
	"net/http"

	"github.com/redis/go-redis/v9"
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

// reserve serves POST /inventory/reservations.
func (s *Simulator) reserve(ctx context.Context, c simCall[*ReserveRequest]) (answer, error) {
	id := simID("res_", ProviderInventory, OpReserve, c.key)
	e := c.entry(c.req.OrderID)
	e.ID = id
	entry, err := e.marshal()
	if err != nil {
		return answer{}, err
	}
	k := inventoryKeys
	keys := []string{k.ledger(), k.orderLedger(c.req.OrderID), k.stock(), k.initialStock(), k.reservation(id)}
	args := []any{
		idBody("reservation_id", id), declined(http.StatusConflict, CodeOutOfStock).body, entry,
		c.req.OrderID, s.initialStock, flag(c.faults.declinesAnySKU(c.req.Items)), flag(c.faults.applyDeclines),
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

// release serves POST /inventory/reservations/{id}/release. It answers
// {"released":true} whether or not this call released anything; like every
// answer, it is stored as the key's first answer, so that a release can be
// held in progress like any other call.
func (s *Simulator) release(ctx context.Context, c simCall[*releaseBody]) (answer, error) {
	id := c.r.PathValue("id")
	k := inventoryKeys
	// The order ID of a reservation never changes once written, so reading
	// it before the script cannot race; the script checks the state. An
	// unknown reservation is released by nothing, and the order's ledger
	// named is then never written.
	orderID, err := s.rdb.HGet(ctx, k.reservation(id), "order_id").Result()
	if errors.Is(err, redis.Nil) {
		orderID, err = c.req.OrderID, nil
	}
	if err != nil {
		return answer{}, err
	}
	e := c.entry(orderID)
	e.ID = id
	entry, err := e.marshal()
	if err != nil {
		return answer{}, err
	}
	keys := []string{k.reservation(id), k.stock(), k.ledger(), k.orderLedger(orderID)}
	return s.runAnswer(ctx, releaseScript, c.guard(), keys, releasedBody, entry, flag(c.faults.dropCompensations))
}
