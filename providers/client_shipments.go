package providers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// preferAsync asks a provider to answer a long call at once (RFC 7240).
const preferAsync = "respond-async"

// ShipAsync implements Shipping: POST {shipping}/shipments with Prefer:
// respond-async. A 202 carries the shipment to follow; any other success
// is a provider that shipped at once, and must carry the tracking number.
// A success that lacks what it must carry is ambiguous: the shipment may
// exist, and a retry under the same key returns it.
func (c *httpClient) ShipAsync(ctx context.Context, r ShipRequest) (Shipment, error) {
	x := exchange{provider: ProviderShipping, op: OpShip, method: http.MethodPost, url: c.shipping + "/shipments",
		key: r.IdempotencyKey, body: r, prefer: preferAsync}
	status, a, decodeErr, err := c.send(ctx, x)
	if err != nil {
		return Shipment{}, err
	}
	if decodeErr != nil {
		return Shipment{}, x.fail(0, fmt.Errorf("reading %d answer: %w", status, decodeErr))
	}
	if status != http.StatusAccepted {
		if a.TrackingNumber == "" {
			return Shipment{}, x.fail(0, fmt.Errorf("%d answer carries no tracking_number", status))
		}
		return Shipment{ID: a.ShipmentID, Status: ShipmentDelivered, Progress: 100, TrackingNumber: a.TrackingNumber}, nil
	}
	if a.ShipmentID == "" {
		return Shipment{}, x.fail(0, fmt.Errorf("%d answer carries no shipment_id", status))
	}
	if a.Status == "" {
		a.Status = ShipmentPending
	}
	return shipmentOf(x, status, a)
}

// GetShipment implements Shipping: GET {shipping}/shipments/{id}. A
// shipment that failed is returned as it is, with no error; an unknown ID
// is the provider's 404, an unexpected *Error.
func (c *httpClient) GetShipment(ctx context.Context, shipmentID string) (Shipment, error) {
	x := exchange{provider: ProviderShipping, op: OpTrack, method: http.MethodGet,
		url: c.shipping + "/shipments/" + url.PathEscape(shipmentID)}
	if shipmentID == "" {
		return Shipment{}, x.fail(0, fmt.Errorf("no shipment ID"))
	}
	status, a, decodeErr, err := c.send(ctx, x)
	if err != nil {
		return Shipment{}, err
	}
	if decodeErr != nil {
		return Shipment{}, x.fail(0, fmt.Errorf("reading %d answer: %w", status, decodeErr))
	}
	if a.ShipmentID == "" {
		a.ShipmentID = shipmentID
	}
	return shipmentOf(x, status, a)
}

// shipmentOf checks a shipment's answer: its status must be known, and a
// delivered one must carry its tracking number.
func shipmentOf(x exchange, status int, a httpAnswer) (Shipment, error) {
	switch {
	case !knownShipmentStatus(a.Status):
		return Shipment{}, x.fail(0, fmt.Errorf("%d answer has no known shipment status: %q", status, a.Status))
	case a.Status == ShipmentDelivered && a.TrackingNumber == "":
		return Shipment{}, x.fail(0, fmt.Errorf("%d answer of a delivered shipment carries no tracking_number", status))
	}
	return Shipment{
		ID: a.ShipmentID, Status: a.Status, Progress: min(max(a.Progress, 0), 100),
		TrackingNumber: a.TrackingNumber, Error: a.Error,
	}, nil
}
