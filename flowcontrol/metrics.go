package flowcontrol

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are flow control's Prometheus collectors. A nil *Metrics records
// nothing.
type Metrics struct {
	// Transitions counts the breaker's moves this worker made
	// (orderflow_breaker_transitions_total{provider,from,to}); each move is
	// made, and counted, by exactly one worker.
	Transitions *prometheus.CounterVec
	// State is each provider's state as this worker last saw it
	// (orderflow_breaker_state{provider}): 0 closed, 1 half_open, 2 open,
	// 3 paused.
	State *prometheus.GaugeVec
	// Admissions counts the answers to attempts
	// (orderflow_flow_admissions_total{provider,step,verdict}): admitted,
	// paused, hold (a 429's Retry-After), open, probing, parked (no slot),
	// rate (the rate limit).
	Admissions *prometheus.CounterVec
	// Wakeups counts the parked instances woken because a slot came free
	// (orderflow_flow_wakeups_total).
	Wakeups prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_breaker_transitions_total", Help: "Circuit breaker transitions, by provider and states.",
		}, []string{"provider", "from", "to"}),
		State: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_breaker_state", Help: "Each provider's state as this worker last saw it: 0 closed, 1 half_open, 2 open, 3 paused.",
		}, []string{"provider"}),
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_flow_admissions_total", Help: "Flow control's answers to step attempts: admitted, or why they wait (paused, hold, open, probing, parked, rate).",
		}, []string{"provider", "step", "verdict"}),
		Wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_flow_wakeups_total", Help: "Parked steps woken because a concurrency slot came free.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Transitions, m.State, m.Admissions, m.Wakeups)
	}
	return m
}

// stateValues are the values of the State gauge.
var stateValues = map[string]float64{StateClosed: 0, StateHalfOpen: 1, StateOpen: 2, StatePaused: 3}

func (m *Metrics) transition(provider, tr string) {
	if m == nil || tr == "" {
		return
	}
	from, to, _ := strings.Cut(tr, ">")
	m.Transitions.WithLabelValues(provider, from, to).Inc()
	m.state(provider, to)
}

func (m *Metrics) state(provider, state string) {
	if m == nil {
		return
	}
	if v, ok := stateValues[state]; ok {
		m.State.WithLabelValues(provider).Set(v)
	}
}

func (m *Metrics) admission(provider, step, verdict string) {
	if m != nil {
		m.Admissions.WithLabelValues(provider, step, verdict).Inc()
	}
}

func (m *Metrics) wakeup() {
	if m != nil {
		m.Wakeups.Inc()
	}
}
