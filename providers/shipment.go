package providers

import "time"

// The statuses of a long-running shipment.
const (
	// ShipmentPending: accepted, not yet picked up.
	ShipmentPending = "pending"
	// ShipmentInTransit: on its way.
	ShipmentInTransit = "in_transit"
	// ShipmentDelivered: delivered; the shipping step succeeds.
	ShipmentDelivered = "delivered"
	// ShipmentFailed: ended without delivery. With Error undeliverable it
	// is the shipping decline (nothing left the warehouse); any other
	// failure is no decline, as a shipment cannot be recalled.
	ShipmentFailed = "failed"
)

// knownShipmentStatus reports whether s is one of the four statuses.
func knownShipmentStatus(s string) bool {
	switch s {
	case ShipmentPending, ShipmentInTransit, ShipmentDelivered, ShipmentFailed:
		return true
	}
	return false
}

// Shipment is a long-running shipment as the provider reports it.
type Shipment struct {
	// ID is the shipment ID to follow with GetShipment; empty when the
	// provider shipped at once.
	ID string
	// Status is ShipmentPending, ShipmentInTransit, ShipmentDelivered or
	// ShipmentFailed.
	Status string
	// Progress is 0 to 100.
	Progress int
	// TrackingNumber is set once delivered.
	TrackingNumber string
	// Error is the provider's error code of a failed shipment, such as
	// CodeUndeliverable.
	Error string
}

// Done reports whether the shipment has ended, delivered or failed.
func (s Shipment) Done() bool { return s.Status == ShipmentDelivered || s.Status == ShipmentFailed }

// Undeliverable reports whether the shipment ended as the shipping
// decline: failed with the error undeliverable, nothing having left the
// warehouse.
func (s Shipment) Undeliverable() bool {
	return s.Status == ShipmentFailed && s.Error == CodeUndeliverable
}

// pendingPercent is the progress at which a simulated shipment is picked
// up: pending before, in transit after.
const pendingPercent = 20

// shipmentAt returns the status and progress, at now, of a simulated
// shipment created at created that takes d to deliver. An undeliverable
// one stays pending at 0 until it would be picked up, and then fails, at
// 0: nothing left the warehouse.
func shipmentAt(created time.Time, d time.Duration, undeliverable bool, now time.Time) (status string, progress int) {
	elapsed := now.Sub(created)
	if d > 0 && elapsed < d {
		progress = int(max(elapsed, 0) * 100 / d)
	} else {
		progress = 100
	}
	switch {
	case undeliverable && progress < pendingPercent:
		return ShipmentPending, 0
	case undeliverable:
		return ShipmentFailed, 0
	case progress >= 100:
		return ShipmentDelivered, 100
	case progress < pendingPercent:
		return ShipmentPending, progress
	}
	return ShipmentInTransit, progress
}
