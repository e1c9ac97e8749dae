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

func (*releaseBody) check() string { return "" }

func (r *ReserveRequest) check() string {
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
	e := c.entry(ProviderInventory, OpReserve, c.req.OrderID)
	e.ID = id
	entry, err := e.marshal()
	if err != nil {
		return answer{}, err
	}
	decline := "0"
	if c.faults.declinesAnySKU(c.req.Items) {
		decline = "1"
	}
	k := inventoryKeys
	keys := []string{
		k.answer(OpReserve, c.key), k.ledger(), k.orderLedger(c.req.OrderID),
		k.stock(), k.initialStock(), k.reservation(id),
	}
	args := []any{
		idBody("reservation_id", id), declined(http.StatusConflict, CodeOutOfStock).body, entry,
		c.req.OrderID, s.initialStock, decline,
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
	return s.runAnswer(ctx, reserveScript, keys, args...)
}

// release serves POST /inventory/reservations/{id}/release. It answers
// {"released":true} whether or not this call released anything.
func (s *Simulator) release(ctx context.Context, c simCall[*releaseBody]) (answer, error) {
	released := answer{status: http.StatusOK, body: `{"released":true}`}
	id := c.r.PathValue("id")
	k := inventoryKeys
	// The order ID of a reservation never changes once written, so reading
	// it before the script cannot race; the script checks the state.
	orderID, err := s.rdb.HGet(ctx, k.reservation(id), "order_id").Result()
	if errors.Is(err, redis.Nil) {
		return released, nil
	}
	if err != nil {
		return answer{}, err
	}
	e := c.entry(ProviderInventory, OpRelease, orderID)
	e.ID = id
	entry, err := e.marshal()
	if err != nil {
		return answer{}, err
	}
	keys := []string{k.reservation(id), k.stock(), k.ledger(), k.orderLedger(orderID)}
	if err := releaseScript.Run(ctx, s.rdb, keys, entry).Err(); err != nil {
		return answer{}, err
	}
	return released, nil
}
