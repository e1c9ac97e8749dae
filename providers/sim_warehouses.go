package providers

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"
)

// maxWarehouseLen bounds a warehouse's name.
const maxWarehouseLen = 128

// checkWarehouse returns what is wrong with a warehouse's name, or "".
func checkWarehouse(wh string) string {
	if len(wh) > maxWarehouseLen {
		return "warehouse must be at most 128 bytes"
	}
	return ""
}

// reservedBody is the answer to a reservation: {"reservation_id"}, with
// "warehouse" when the reservation names one.
func reservedBody(id, warehouse string) string {
	b, _ := json.Marshal(struct {
		ReservationID string `json:"reservation_id"`
		Warehouse     string `json:"warehouse,omitempty"`
	}{id, warehouse})
	return string(b)
}

// reservationOf returns the order ID and warehouse of a reservation, or
// "" and "" for an unknown one.
func (s *Simulator) reservationOf(ctx context.Context, id string) (orderID, warehouse string, err error) {
	v, err := s.rdb.HMGet(ctx, inventoryKeys.reservation(id), "order_id", "warehouse").Result()
	if errors.Is(err, redis.Nil) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	orderID, _ = v[0].(string)
	warehouse, _ = v[1].(string)
	return orderID, warehouse, nil
}
