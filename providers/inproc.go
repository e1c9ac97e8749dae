package providers

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// InProcess implements Inventory, Payment and Shipping in memory, with no
// latency, for benchmarks and tests. Like a real provider it answers a
// repeated idempotency key with its first result and applies nothing twice.
// It is safe for concurrent use.
//
// The decline fields must be set before the first call and not changed
// afterwards.
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
	// Latency is added to every call, to model a provider a worker waits
	// on (benchmarks of horizontal scaling). Default 0.
	Latency time.Duration

	mu       sync.Mutex
	seq      uint64
	answers  [opCount]map[string]inprocAnswer
	calls    [opCount]int
	applied  [opCount]int
	released map[string]bool   // reservation ID -> released
	refunds  map[string]string // transaction ID -> its refund's ID, "" while unrefunded
}

// The operations as array indexes.
const (
	opReserve = iota
	opRelease
	opCharge
	opRefund
	opShip
	opCount
)

var opIndex = map[string]int{
	OpReserve: opReserve,
	OpRelease: opRelease,
	OpCharge:  opCharge,
	OpRefund:  opRefund,
	OpShip:    opShip,
}

// inprocAnswer is the first result given to one idempotency key.
type inprocAnswer struct {
	id  string
	err *Error
	// noEffect marks a success that applied nothing, such as a refund of
	// an unknown transaction.
	noEffect bool
}

// NewInProcess returns an empty in-process provider set.
func NewInProcess() *InProcess {
	p := &InProcess{released: make(map[string]bool), refunds: make(map[string]string)}
	for i := range p.answers {
		p.answers[i] = make(map[string]inprocAnswer)
	}
	return p
}

// Set returns p as all three providers.
func (p *InProcess) Set() Set { return Set{Inventory: p, Payment: p, Shipping: p} }

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
		for _, it := range r.Items {
			if p.OutOfStockSKUs[it.SKU] {
				return inprocDecline(ProviderInventory, OpReserve, http.StatusConflict, CodeOutOfStock)
			}
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
			txn = p.answers[opCharge][chargeKey].id // "" when declined or never charged
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

// Ship implements Shipping.
func (p *InProcess) Ship(ctx context.Context, r ShipRequest) (string, error) {
	return p.do(ctx, opShip, r.IdempotencyKey, func() inprocAnswer {
		undeliverable := p.UndeliverableCustomers[r.CustomerID]
		for _, it := range r.Items {
			undeliverable = undeliverable || p.UndeliverableSKUs[it.SKU]
		}
		if undeliverable {
			return inprocDecline(ProviderShipping, OpShip, http.StatusUnprocessableEntity, CodeUndeliverable)
		}
		return inprocAnswer{id: p.newID("trk_")}
	})
}

// do answers one call: the stored answer for a key seen before, else the
// one decideFunc gives, which is then stored. decideFunc runs under p.mu.
func (p *InProcess) do(ctx context.Context, op int, key string, decideFunc func() inprocAnswer) (string, error) {
	if p.Latency > 0 {
		t := time.NewTimer(p.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	if err := ctx.Err(); err != nil {
		return "", &Error{Provider: opProvider(op), Op: opName(op), Err: err}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[op]++
	a, seen := p.answers[op][key]
	if !seen {
		a = decideFunc()
		p.answers[op][key] = a
		if a.err == nil && !a.noEffect {
			p.applied[op]++
		}
	}
	if a.err != nil {
		return "", a.err
	}
	return a.id, nil
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
	return [opCount]string{OpReserve, OpRelease, OpCharge, OpRefund, OpShip}[op]
}

func opProvider(op int) string {
	switch op {
	case opReserve, opRelease:
		return ProviderInventory
	case opCharge, opRefund:
		return ProviderPayment
	default:
		return ProviderShipping
	}
}
