package providers

import (
	"context"
	"net/http"
	"time"
)

// inprocShipment is a long-running shipment of InProcess.
type inprocShipment struct {
	id, trackingNumber string
	created            time.Time
	duration           time.Duration
	undeliverable      bool
}

// ShipAsync implements Shipping. With ShipmentDuration 0 it ships at once,
// as Ship does, and returns the shipment delivered with no ID. Otherwise
// it starts a shipment that progresses over ShipmentDuration; an
// undeliverable one is accepted and ends failed (GetShipment), applying
// nothing, as the simulator's does.
func (p *InProcess) ShipAsync(ctx context.Context, r ShipRequest) (Shipment, error) {
	if p.ShipmentDuration <= 0 {
		trk, err := p.Ship(ctx, r)
		if err != nil {
			return Shipment{}, err
		}
		return Shipment{Status: ShipmentDelivered, Progress: 100, TrackingNumber: trk}, nil
	}
	a, err := p.answer(ctx, opShip, r.IdempotencyKey, func() inprocAnswer {
		s := &inprocShipment{
			id: p.newID("shp_"), trackingNumber: p.newID("trk_"),
			created: time.Now(), duration: p.ShipmentDuration, undeliverable: p.undeliverable(r),
		}
		p.shipments[s.id] = s
		return inprocAnswer{id: s.id, shipment: s, noEffect: s.undeliverable}
	})
	if err != nil {
		return Shipment{}, err
	}
	if a.shipment == nil { // shipped at once under this key before
		return Shipment{Status: ShipmentDelivered, Progress: 100, TrackingNumber: a.id}, nil
	}
	return p.shipmentNow(a.shipment), nil
}

// GetShipment implements Shipping. An unknown ID is a 404 not_found, an
// unexpected *Error, as over HTTP.
func (p *InProcess) GetShipment(ctx context.Context, shipmentID string) (Shipment, error) {
	if err := p.pause(ctx); err != nil {
		return Shipment{}, &Error{Provider: ProviderShipping, Op: OpTrack, Err: err}
	}
	p.mu.Lock()
	s, ok := p.shipments[shipmentID]
	p.mu.Unlock()
	if !ok {
		return Shipment{}, &Error{Provider: ProviderShipping, Op: OpTrack, Status: http.StatusNotFound, Code: CodeNotFound}
	}
	return p.shipmentNow(s), nil
}

// shipmentNow returns s as it stands now.
func (p *InProcess) shipmentNow(s *inprocShipment) Shipment {
	status, progress := shipmentAt(s.created, s.duration, s.undeliverable, time.Now())
	out := Shipment{ID: s.id, Status: status, Progress: progress}
	switch status {
	case ShipmentDelivered:
		out.TrackingNumber = s.trackingNumber
	case ShipmentFailed:
		out.Error = CodeUndeliverable
	}
	return out
}
