package providers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// ErrUnknownProvider is returned for a provider name other than inventory,
// payment, shipping and risk.
var ErrUnknownProvider = errors.New("providers: unknown provider")

// providerNames lists the simulated providers in ledger order.
var providerNames = []string{ProviderInventory, ProviderPayment, ProviderShipping, ProviderRisk}

// effectProviders lists the providers whose calls change the world, in
// ledger order: every provider but risk, whose assessments change nothing.
var effectProviders = []string{ProviderInventory, ProviderPayment, ProviderShipping}

// SimConfig configures a Simulator.
type SimConfig struct {
	// Inventory are the inventory provider's faults. Default none.
	Inventory Faults
	// Payment are the payment provider's faults. Default none.
	Payment Faults
	// Shipping are the shipping provider's faults. Default none.
	Shipping Faults
	// Risk are the risk-assessment agent's faults and decision rules.
	// Default none: every order is approved.
	Risk Faults
	// InitialStock is each SKU's stock at each warehouse before its first
	// reservation there; 0 or less leaves stock unlimited. Default 0.
	InitialStock int
	// Seed seeds the fault dice, for repeatable runs; 0 picks a random
	// seed. Default 0.
	Seed uint64
	// CallLog makes the simulator record every call it receives, when it
	// arrived and when it was over, in Redis ({sim:<provider>}:calls), for
	// checking limits from the provider's side (Ledger.ScanCalls). It costs
	// two writes a call and the log is never trimmed. Default false.
	CallLog bool
	// Logger receives the errors the simulator cannot answer with, such as
	// Redis failures. Default: discard.
	Logger *slog.Logger
}

// Validate reports the first field out of range. NewSimulator forces such
// fields into range instead; call Validate first to refuse them.
func (c SimConfig) Validate() error {
	for _, f := range []struct {
		name   string
		faults Faults
	}{{"Inventory", c.Inventory}, {"Payment", c.Payment}, {"Shipping", c.Shipping}, {"Risk", c.Risk}} {
		if err := f.faults.Validate(); err != nil {
			return fmt.Errorf("providers: SimConfig.%s: %w", f.name, err)
		}
	}
	return nil
}

// Simulator serves the inventory, payment, shipping and risk providers of
// PROVIDERS.md over HTTP, under the path prefixes /inventory, /payment,
// /shipping and /risk, with their ledgers in Redis. Several simulators may
// share one Redis: each effect is applied once per idempotency key by a Lua
// script, and a key one simulator holds in progress is in progress to all.
//
// Inventory keeps stock per warehouse (ReserveRequest.Warehouse); shipping
// answers a call with Prefer: respond-async 202 and lets the shipment
// progress over Faults.ShipmentDuration, from a creation time kept in
// Redis, so that every simulator reports the same; risk decides by the
// rules of its Faults, and a key keeps its first decision.
//
// It is as rude as real providers can be, by Faults: failures, latency,
// lost responses, 429s, declines, keys held in progress, stray 401s and
// 404s, and, to prove that an audit catches them, deliberate breaches of
// the contract (Faults.Broken).
//
// Besides the provider calls it serves:
//
//	GET  /healthz                      200 when Redis answers
//	GET  /{provider}/faults            the provider's faults
//	PUT  /{provider}/faults            replace them; the body is Faults as JSON
//	GET  /{provider}/ledger            the provider's ledger entries, optionally ?order_id=
//	GET  /inventory/stock/{sku}        {"sku","warehouse","available","limited"}, optionally ?warehouse=
//
// and GET /shipping/shipments/{id}, the one read of the contract, which
// takes the failure, latency, rate-limit, stray and timeout faults but is
// never held in progress.
type Simulator struct {
	rdb          redis.UniversalClient
	ledger       *Ledger
	initialStock int
	callLog      bool
	calls        *callWriter
	log          *slog.Logger
	rand         *lockedRand
	faults       map[string]*atomic.Pointer[faultState] // read-only map
	mux          *http.ServeMux

	done      chan struct{}
	closeOnce sync.Once
}

// NewSimulator returns a simulator over rdb. Faults out of range are forced
// into range (see SimConfig.Validate). The simulator never closes rdb.
func NewSimulator(rdb redis.UniversalClient, cfg SimConfig) *Simulator {
	s := &Simulator{
		rdb:          rdb,
		ledger:       NewLedger(rdb),
		initialStock: max(cfg.InitialStock, 0),
		callLog:      cfg.CallLog,
		log:          cfg.Logger,
		rand:         newLockedRand(cfg.Seed),
		faults:       make(map[string]*atomic.Pointer[faultState]),
		mux:          http.NewServeMux(),
		done:         make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.calls = &callWriter{rdb: rdb, log: s.log}
	for name, f := range map[string]Faults{
		ProviderInventory: cfg.Inventory,
		ProviderPayment:   cfg.Payment,
		ProviderShipping:  cfg.Shipping,
		ProviderRisk:      cfg.Risk,
	} {
		p := new(atomic.Pointer[faultState])
		p.Store(newFaultState(f.clamped()))
		s.faults[name] = p
	}
	s.routes()
	return s
}

func (s *Simulator) routes() {
	s.mux.HandleFunc("POST /inventory/reservations", effectHandler(s, ProviderInventory, OpReserve, s.reserve))
	s.mux.HandleFunc("POST /inventory/reservations/{id}/release", effectHandler(s, ProviderInventory, OpRelease, s.release))
	s.mux.HandleFunc("GET /inventory/stock/{sku}", s.serveStock)
	s.mux.HandleFunc("POST /payment/charges", effectHandler(s, ProviderPayment, OpCharge, s.charge))
	s.mux.HandleFunc("POST /payment/refunds", effectHandler(s, ProviderPayment, OpRefund, s.refund))
	s.mux.HandleFunc("POST /shipping/shipments", effectHandler(s, ProviderShipping, OpShip, s.ship))
	s.mux.HandleFunc("GET /shipping/shipments/{id}", readHandler(s, ProviderShipping, s.serveShipment))
	s.mux.HandleFunc("POST /risk/assessments", effectHandler(s, ProviderRisk, OpAssess, s.assess))
	s.mux.HandleFunc("GET /{provider}/faults", s.serveGetFaults)
	s.mux.HandleFunc("PUT /{provider}/faults", s.servePutFaults)
	s.mux.HandleFunc("GET /{provider}/ledger", s.serveLedger)
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
}

// ServeHTTP implements http.Handler.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close ends the waits of responses held by latency or simulated timeouts,
// so that a server shutting down need not wait for them, and ends the
// in-progress holds early, applying their effects. Call it before shutting
// the server down. It is safe to call more than once.
func (s *Simulator) Close() { s.closeOnce.Do(func() { close(s.done) }) }

// SetFaults replaces a provider's faults, effective for the calls that
// start afterwards. It is safe to call while serving.
func (s *Simulator) SetFaults(provider string, f Faults) error {
	p, ok := s.faults[provider]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	if err := f.Validate(); err != nil {
		return err
	}
	p.Store(newFaultState(f))
	return nil
}

// Faults returns a provider's faults, with defaults filled in.
func (s *Simulator) Faults(provider string) (Faults, error) {
	p, ok := s.faults[provider]
	if !ok {
		return Faults{}, fmt.Errorf("%w %q", ErrUnknownProvider, provider)
	}
	f := p.Load().Faults
	f.DeclineCustomers = nonNil(f.DeclineCustomers)
	f.DeclineSKUs = nonNil(f.DeclineSKUs)
	f.Broken = nonNil(f.Broken)
	return f, nil
}

func (s *Simulator) serveHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.rdb.Ping(r.Context()).Err(); err != nil {
		s.log.ErrorContext(r.Context(), "simulator: redis ping", "err", err)
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "redis does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Simulator) serveGetFaults(w http.ResponseWriter, r *http.Request) {
	f, err := s.Faults(r.PathValue("provider"))
	if err != nil {
		writeError(w, http.StatusNotFound, "unknown_provider", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Simulator) servePutFaults(w http.ResponseWriter, r *http.Request) {
	provider := r.PathValue("provider")
	if _, ok := s.faults[provider]; !ok {
		writeError(w, http.StatusNotFound, "unknown_provider", fmt.Sprintf("unknown provider %q", provider))
		return
	}
	var f Faults
	if !decodeBody(w, r, &f) {
		return
	}
	if err := s.SetFaults(provider, f); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	s.serveGetFaults(w, r)
}

func (s *Simulator) serveLedger(w http.ResponseWriter, r *http.Request) {
	provider := r.PathValue("provider")
	if _, ok := s.faults[provider]; !ok {
		writeError(w, http.StatusNotFound, "unknown_provider", fmt.Sprintf("unknown provider %q", provider))
		return
	}
	var (
		entries []LedgerEntry
		err     error
	)
	if orderID := r.URL.Query().Get("order_id"); orderID != "" {
		entries, err = s.ledger.read(r.Context(), keysOf(provider).orderLedger(orderID))
	} else {
		entries, err = s.ledger.All(r.Context(), provider)
	}
	if err != nil {
		s.internalError(w, r, "reading ledger", err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

func (s *Simulator) serveStock(w http.ResponseWriter, r *http.Request) {
	sku, warehouse := r.PathValue("sku"), r.URL.Query().Get("warehouse")
	available, limited, err := s.ledger.StockAt(r.Context(), warehouse, sku)
	if err != nil {
		s.internalError(w, r, "reading stock", err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		SKU       string `json:"sku"`
		Warehouse string `json:"warehouse,omitempty"`
		Available int    `json:"available"`
		Limited   bool   `json:"limited"`
	}{sku, warehouse, available, limited})
}

// internalError logs err and answers 500 without its details.
func (s *Simulator) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), "simulator: "+what, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, CodeInternal, "")
}

// faultsOf returns a provider's current faults.
func (s *Simulator) faultsOf(provider string) *faultState { return s.faults[provider].Load() }
