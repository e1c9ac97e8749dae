package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/providers"
)

// SimProcess serves the provider simulators over HTTP.
type SimProcess struct {
	http *HTTPService
	sim  *providers.Simulator
}

// StartSim serves the simulators on listen, with their ledgers in rdb.
func StartSim(rdb redis.UniversalClient, listen string, cfg providers.SimConfig, log *slog.Logger) (*SimProcess, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Logger = log
	sim := providers.NewSimulator(rdb, cfg)
	svc, err := ListenHTTP(listen, sim, log)
	if err != nil {
		sim.Close()
		return nil, fmt.Errorf("listening on %s: %w", listen, err)
	}
	return &SimProcess{http: svc, sim: sim}, nil
}

// URL returns the simulators' base URL.
func (p *SimProcess) URL() string { return p.http.URL() }

// Simulator returns the simulator, to change faults at run time.
func (p *SimProcess) Simulator() *providers.Simulator { return p.sim }

// HTTPConfig returns client settings that point at these simulators.
func (p *SimProcess) HTTPConfig() providers.HTTPConfig {
	return providers.HTTPConfig{
		InventoryURL: p.URL() + "/inventory",
		PaymentURL:   p.URL() + "/payment",
		ShippingURL:  p.URL() + "/shipping",
		RiskURL:      p.URL() + "/risk",
	}
}

// Shutdown stops serving.
func (p *SimProcess) Shutdown(ctx context.Context) error {
	// Close first: it ends the simulators' held answers (latency, lost
	// answers, in-progress holds, applying what they hold), which would
	// otherwise keep their requests, and the shutdown, waiting.
	p.sim.Close()
	err := p.http.Shutdown(ctx)
	// Every call is over: let the call log take its last events.
	return errors.Join(err, p.sim.FlushCalls(ctx))
}
