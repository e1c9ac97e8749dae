// Package providers holds the clients for the external services an order acts
// on (inventory, payment, shipping and the risk-assessment agent), following
// the HTTP contract in
// PROVIDERS.md, an in-process implementation of the same interfaces for
// benchmarks, and the simulators that `orderflow sim` serves.
//
// Every call that changes something carries an idempotency key of the form
// <order_id>:<operation>, or <order_id>:<operation>:<suffix> where an order
// performs one operation several times by design, such as one reservation
// per warehouse (IdempotencyKeyFor). A provider that sees a key again
// answers with its first result and applies nothing twice, so a step may be
// retried freely.
package providers

import (
	"context"
	"strings"
)

// The provider names, as carried by Error.Provider and used as the
// simulators' path prefixes.
const (
	ProviderInventory = "inventory"
	ProviderPayment   = "payment"
	ProviderShipping  = "shipping"
	ProviderRisk      = "risk"
)

// The operations named in idempotency keys.
const (
	OpReserve = "reserve"
	OpRelease = "release"
	OpCharge  = "charge"
	OpRefund  = "refund"
	OpShip    = "ship"
	OpAssess  = "assess"
	// OpTrack is following a long-running shipment (GET
	// /shipments/{id}): a read, which carries no idempotency key.
	OpTrack = "track"
)

// IdempotencyKey returns the stable key <order_id>:<operation>.
func IdempotencyKey(orderID, op string) string { return orderID + ":" + op }

// IdempotencyKeyFor returns the stable key <prefix>:<op>, or
// <prefix>:<op>:<suffix> when suffix is not empty: the key of one of the
// calls an order makes several times by design, such as
// <order_id>:reserve:<warehouse>. prefix is the order's key prefix (the
// order ID, or the ID with its incarnation).
func IdempotencyKeyFor(prefix, op, suffix string) string {
	if suffix == "" {
		return prefix + ":" + op
	}
	return prefix + ":" + op + ":" + suffix
}

// chargeKeyOf returns the charge key a refund key refers to when a refund
// names no transaction: <prefix>:refund refers to <prefix>:charge. It
// reports false for a key that does not end in ":refund".
func chargeKeyOf(refundKey string) (string, bool) {
	prefix, ok := strings.CutSuffix(refundKey, ":"+OpRefund)
	return prefix + ":" + OpCharge, ok && prefix != ""
}

// Item is one order line as the providers see it.
type Item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// ReserveRequest asks inventory to hold stock for an order.
type ReserveRequest struct {
	IdempotencyKey string `json:"-"`
	OrderID        string `json:"order_id"`
	Items          []Item `json:"items"`
	// Warehouse is where to reserve; empty names the provider's one
	// default warehouse. With several warehouses the key is
	// <order_id>:reserve:<warehouse>.
	Warehouse string `json:"warehouse,omitempty"`
}

// ReleaseRequest gives reserved stock back.
type ReleaseRequest struct {
	IdempotencyKey string `json:"-"`
	OrderID        string `json:"-"`
	ReservationID  string `json:"-"`
}

// ChargeRequest asks payment to charge a customer.
type ChargeRequest struct {
	IdempotencyKey string `json:"-"`
	OrderID        string `json:"order_id"`
	CustomerID     string `json:"customer_id"`
	AmountCents    int64  `json:"amount_cents"`
	Currency       string `json:"currency"`
}

// RefundRequest asks payment to refund a charge.
type RefundRequest struct {
	IdempotencyKey string `json:"-"`
	OrderID        string `json:"order_id"`
	// TransactionID is the charge to refund. Empty asks the provider to
	// refund the charge made under the charge key that matches
	// IdempotencyKey (<prefix>:refund refunds <prefix>:charge), if there is
	// one: so a refund can be sent while the charge is in doubt.
	TransactionID string `json:"transaction_id"`
	AmountCents   int64  `json:"amount_cents"`
	Currency      string `json:"currency"`
}

// ShipRequest asks shipping to send the reserved items.
type ShipRequest struct {
	IdempotencyKey string `json:"-"`
	OrderID        string `json:"order_id"`
	CustomerID     string `json:"customer_id,omitempty"`
	ReservationID  string `json:"reservation_id"`
	Items          []Item `json:"items"`
}

// Inventory reserves and releases stock.
type Inventory interface {
	// Reserve returns the reservation ID. Out of stock is a permanent *Error
	// with status 409 and code out_of_stock.
	Reserve(ctx context.Context, r ReserveRequest) (reservationID string, err error)
	// Release gives the stock back. Releasing twice, or an unknown
	// reservation, succeeds.
	Release(ctx context.Context, r ReleaseRequest) error
}

// Payment charges and refunds.
type Payment interface {
	// Charge returns the transaction ID. A decline is a permanent *Error with
	// status 402 and code card_declined.
	Charge(ctx context.Context, r ChargeRequest) (transactionID string, err error)
	// Refund returns the refund ID, or "" with no error when there was
	// nothing to refund: no charge under the charge key for an empty
	// TransactionID, or a transaction the provider never issued. A
	// transaction is refunded at most once.
	Refund(ctx context.Context, r RefundRequest) (refundID string, err error)
}

// Shipping ships reserved stock.
type Shipping interface {
	// Ship returns the tracking number. An undeliverable order is a permanent
	// *Error with status 422 and code undeliverable.
	Ship(ctx context.Context, r ShipRequest) (trackingNumber string, err error)
	// ShipAsync starts a long-running shipment, asking the provider to
	// answer at once (Prefer: respond-async). It returns the shipment as
	// accepted, usually pending, to follow with GetShipment; a provider that
	// ships at once returns it delivered, with its tracking number and no
	// ID. An undeliverable order is a permanent *Error with status 422 and
	// code undeliverable. The same key returns the same shipment.
	ShipAsync(ctx context.Context, r ShipRequest) (Shipment, error)
	// GetShipment returns a shipment's current status. A shipment that
	// ended failed, such as undeliverable (Shipment.Undeliverable), is a
	// Shipment with no error: the caller decides. An unknown ID is an
	// unexpected *Error (404).
	GetShipment(ctx context.Context, shipmentID string) (Shipment, error)
}

// Set bundles the providers a worker needs.
type Set struct {
	Inventory Inventory
	Payment   Payment
	Shipping  Shipping
	// Risk is the risk-assessment agent (workflow v2).
	Risk Risk
}
