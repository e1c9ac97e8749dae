package providers

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// InProcess implements Inventory, Payment, Shipping and Risk in memory,
// with no latency, for benchmarks and tests. Like a real provider it
// answers a repeated idempotency key with its first result and applies
// nothing twice. It is safe for concurrent use.
//
// The decline, rule and duration fields must be set before the first call
// and not changed afterwards.
type InProcess struct {
	// DeclineCustomers makes payment decline these customers' charges with
	// a permanent 402 card_declined. Default: none.
	DeclineCustomers map[string]bool
	// OutOfStockSKUs makes inventory refuse reservations holding any of
	// these SKUs with a permanent 409 out_of_stock. Default: none.
	OutOfStockSKUs map[string]bool
	// UndeliverableSKUs makes shipping refuse shipments holding any of
	// these SKUs with a permanent 422 undeliverable. Default: none.
	UndeliverableSKUs map[string]bool
	// UndeliverableCustomers makes shipping refuse these customers'
	// shipments with a permanent 422 undeliverable. Default: none.
	UndeliverableCustomers map[string]bool
	// OutOfStockWarehouses makes inventory refuse reservations at these
	// warehouses with a permanent 409 out_of_stock. Default: none.
	OutOfStockWarehouses map[string]bool
	// ShipmentDuration is how long a shipment started by ShipAsync takes
	// to deliver, progressing meanwhile; an undeliverable one fails when it
	// would be picked up. 0 ships at once, as Ship does. Default 0.
	ShipmentDuration time.Duration
	// ReviewCustomers and RejectCustomers make the risk assessment of
	// these customers' orders review and reject. Default: none.
	ReviewCustomers, RejectCustomers map[string]bool
	// ReviewAboveCents and RejectAboveCents make the risk assessment of
	// orders above these amounts review and reject; 0 is off. A reject
	// rule wins over a review rule, and no rule matching approves. Default
	// 0.
	ReviewAboveCents, RejectAboveCents int64
	// Latency is added to every call, to model a provider a worker waits
	// on (benchmarks of horizontal scaling). Default 0.
	Latency time.Duration
	// KeyRetention is how long a key's first answer is kept, at least (a
	// real provider forgets keys after a while); 0 keeps every key. The
	// benchmarks set it, so that a long soak's worker memory measures the
	// worker, not this fake's ledger. Default 0.
	KeyRetention time.Duration

	mu        sync.Mutex
	seq       uint64
	answers   [opCount]map[string]inprocAnswer
	older     [opCount]map[string]inprocAnswer // the generation before, with KeyRetention
	rotated   time.Time                        // when answers became the current generation
	calls     [opCount]int
	applied   [opCount]int
	released  map[string]bool            // reservation ID -> released
	refunds   map[string]string          // transaction ID -> its refund's ID, "" while unrefunded
	shipments map[string]*inprocShipment // shipment ID -> the shipment
}

// The operations as array indexes.
const (
	opReserve = iota
	opRelease
	opCharge
	opRefund
	opShip
	opAssess
	opCount
)

var opIndex = map[string]int{
	OpReserve: opReserve,
	OpRelease: opRelease,
	OpCharge:  opCharge,
	OpRefund:  opRefund,
	OpShip:    opShip,
	OpAssess:  opAssess,
}

// inprocAnswer is the first result given to one idempotency key.
type inprocAnswer struct {
	id  string
	err *Error
	// assessment is an assessment's answer.
	assessment Assessment
	// shipment is the shipment ShipAsync started, if it did.
	shipment *inprocShipment
	// noEffect marks a success that applied nothing, such as a refund of
	// an unknown transaction.
	noEffect bool
}

// NewInProcess returns an empty in-process provider set.
func NewInProcess() *InProcess {
	p := &InProcess{released: make(map[string]bool), refunds: make(map[string]string), shipments: make(map[string]*inprocShipment)}
	for i := range p.answers {
		p.answers[i] = make(map[string]inprocAnswer)
	}
	return p
}

// Set returns p as all the providers.
func (p *InProcess) Set() Set { return Set{Inventory: p, Payment: p, Shipping: p, Risk: p} }

// Applied returns how many times op's effect was applied: repeated keys,
// declines, no-op releases and no-op refunds do not count.
func (p *InProcess) Applied(op string) int { return p.count(&p.applied, op) }

// Calls returns how many times op was called, repeats and declines included.
func (p *InProcess) Calls(op string) int { return p.count(&p.calls, op) }

func (p *InProcess) count(counts *[opCount]int, op string) int {
	i, ok := opIndex[op]
	if !ok {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return counts[i]
}

// Reserve implements Inventory.
func (p *InProcess) Reserve(ctx context.Context, r ReserveRequest) (string, error) {
	return p.do(ctx, opReserve, r.IdempotencyKey, func() inprocAnswer {
		outOfStock := p.OutOfStockWarehouses[r.Warehouse]
		for _, it := range r.Items {
			outOfStock = outOfStock || p.OutOfStockSKUs[it.SKU]
		}
		if outOfStock {
			return inprocDecline(ProviderInventory, OpReserve, http.StatusConflict, CodeOutOfStock)
		}
		id := p.newID("res_")
		p.released[id] = false
		return inprocAnswer{id: id}
	})
}

// Release implements Inventory. Only the first release of a known
// reservation counts as applied.
func (p *InProcess) Release(ctx context.Context, r ReleaseRequest) error {
	if err := ctx.Err(); err != nil {
		return &Error{Provider: ProviderInventory, Op: OpRelease, Err: err}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[opRelease]++
	if released, ok := p.released[r.ReservationID]; ok && !released {
		p.released[r.ReservationID] = true
		p.applied[opRelease]++
	}
	return nil
}

// Charge implements Payment.
func (p *InProcess) Charge(ctx context.Context, r ChargeRequest) (string, error) {
	return p.do(ctx, opCharge, r.IdempotencyKey, func() inprocAnswer {
		if p.DeclineCustomers[r.CustomerID] {
			return inprocDecline(ProviderPayment, OpCharge, http.StatusPaymentRequired, CodeCardDeclined)
		}
		id := p.newID("txn_")
		p.refunds[id] = ""
		return inprocAnswer{id: id}
	})
}

// Refund implements Payment as PROVIDERS.md describes it: an empty
// transaction ID refunds the charge made under the matching charge key, if
// any; a transaction is refunded at most once, and refunding one that was
// never issued applies nothing and returns "".
func (p *InProcess) Refund(ctx context.Context, r RefundRequest) (string, error) {
	chargeKey, byKey := "", r.TransactionID == ""
	if byKey {
		var ok bool
		if chargeKey, ok = chargeKeyOf(r.IdempotencyKey); !ok {
			return "", &Error{Provider: ProviderPayment, Op: OpRefund, Status: http.StatusBadRequest, Code: CodeBadRequest}
		}
	}
	return p.do(ctx, opRefund, r.IdempotencyKey, func() inprocAnswer {
		txn := r.TransactionID
		if byKey {
			a, _ := p.lookup(opCharge, chargeKey)
			txn = a.id // "" when declined or never charged
		}
		refundID, known := p.refunds[txn]
		switch {
		case !known:
			return inprocAnswer{noEffect: true}
		case refundID != "":
			return inprocAnswer{id: refundID, noEffect: true}
		}
		refundID = p.newID("ref_")
		p.refunds[txn] = refundID
		return inprocAnswer{id: refundID}
	})
}

// Ship implements Shipping. Under a key that started a long-running
// shipment (ShipAsync) it returns its tracking number once delivered,
// and 409 in progress before.
func (p *InProcess) Ship(ctx context.Context, r ShipRequest) (string, error) {
	a, err := p.answer(ctx, opShip, r.IdempotencyKey, func() inprocAnswer {
		if p.undeliverable(r) {
			return inprocDecline(ProviderShipping, OpShip, http.StatusUnprocessableEntity, CodeUndeliverable)
		}
		return inprocAnswer{id: p.newID("trk_")}
	})
	if err != nil || a.shipment == nil {
		return a.id, err
	}
	s := p.shipmentNow(a.shipment)
	switch {
	case s.Status == ShipmentDelivered:
		return s.TrackingNumber, nil
	case s.Undeliverable():
		return "", &Error{Provider: ProviderShipping, Op: OpShip, Status: http.StatusUnprocessableEntity, Code: CodeUndeliverable}
	}
	return "", &Error{Provider: ProviderShipping, Op: OpShip, Status: http.StatusConflict, Code: CodeInProgress}
}

// undeliverable reports whether shipping refuses r.
func (p *InProcess) undeliverable(r ShipRequest) bool {
	undeliverable := p.UndeliverableCustomers[r.CustomerID]
	for _, it := range r.Items {
		undeliverable = undeliverable || p.UndeliverableSKUs[it.SKU]
	}
	return undeliverable
}

// do answers one call with an ID: see answer.
func (p *InProcess) do(ctx context.Context, op int, key string, decideFunc func() inprocAnswer) (string, error) {
	a, err := p.answer(ctx, op, key, decideFunc)
	return a.id, err
}

// answer answers one call: the stored answer for a key seen before, else
// the one decideFunc gives, which is then stored. decideFunc runs under
// p.mu. A stored decline is returned as the error.
func (p *InProcess) answer(ctx context.Context, op int, key string, decideFunc func() inprocAnswer) (inprocAnswer, error) {
	if err := p.pause(ctx); err != nil {
		return inprocAnswer{}, &Error{Provider: opProvider(op), Op: opName(op), Err: err}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[op]++
	p.rotate()
	a, seen := p.lookup(op, key)
	if !seen {
		a = decideFunc()
		p.answers[op][key] = a
		if a.err == nil && !a.noEffect {
			p.applied[op]++
		}
	}
	if a.err != nil {
		return inprocAnswer{}, a.err
	}
	return a, nil
}

// lookup returns the answer kept for key, from either generation.
func (p *InProcess) lookup(op int, key string) (inprocAnswer, bool) {
	if a, ok := p.answers[op][key]; ok {
		return a, true
	}
	a, ok := p.older[op][key]
	return a, ok
}

// rotate, with KeyRetention, drops the older generation of answers once
// the current one is KeyRetention old: a key is kept between one and two
// retentions.
func (p *InProcess) rotate() {
	if p.KeyRetention <= 0 {
		return
	}
	now := time.Now()
	if p.rotated.IsZero() {
		p.rotated = now
		return
	}
	if now.Sub(p.rotated) < p.KeyRetention {
		return
	}
	for i := range p.answers {
		p.older[i], p.answers[i] = p.answers[i], make(map[string]inprocAnswer)
	}
	p.rotated = now
}

// pause waits for p.Latency, and returns ctx's error when it ends first.
func (p *InProcess) pause(ctx context.Context) error {
	if p.Latency > 0 {
		t := time.NewTimer(p.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return ctx.Err()
}

// newID returns a fresh ID; p.mu must be held.
func (p *InProcess) newID(prefix string) string {
	p.seq++
	var buf [32]byte
	return string(strconv.AppendUint(append(buf[:0], prefix...), p.seq, 10))
}

func inprocDecline(provider, op string, status int, code string) inprocAnswer {
	return inprocAnswer{err: &Error{Provider: provider, Op: op, Status: status, Code: code}}
}

func opName(op int) string {
	return [opCount]string{OpReserve, OpRelease, OpCharge, OpRefund, OpShip, OpAssess}[op]
}

func opProvider(op int) string {
	switch op {
	case opReserve, opRelease:
		return ProviderInventory
	case opCharge, opRefund:
		return ProviderPayment
	case opAssess:
		return ProviderRisk
	default:
		return ProviderShipping
	}
}
