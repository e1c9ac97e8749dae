package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus collectors. A nil *Metrics records
// nothing.
type Metrics struct {
	Transitions *prometheus.CounterVec
	Steps       *prometheus.CounterVec
	StepSeconds *prometheus.HistogramVec
	Finished    *prometheus.CounterVec
	Redrives    *prometheus.CounterVec
	StaleWrites prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_transitions_total", Help: "State transitions committed.",
		}, []string{"workflow", "from", "to", "event"}),
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_step_attempts_total", Help: "Step attempts by outcome (success, retry, failure).",
		}, []string{"workflow", "step", "outcome"}),
		StepSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "orderflow_step_duration_seconds", Help: "Duration of step attempts.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"workflow", "step"}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_instances_finished_total", Help: "Instances that reached a terminal status.",
		}, []string{"workflow", "status"}),
		Redrives: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_redrives_total", Help: "Instances the reaper re-drove, by reason.",
		}, []string{"reason"}),
		StaleWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_stale_writes_total", Help: "Compare-and-set writes that lost to another writer.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Transitions, m.Steps, m.StepSeconds, m.Finished, m.Redrives, m.StaleWrites)
	}
	return m
}

func (m *Metrics) transition(wf, from, to, event string) {
	if m != nil {
		m.Transitions.WithLabelValues(wf, from, to, event).Inc()
	}
}

func (m *Metrics) step(wf, step, outcome string, d time.Duration) {
	if m != nil {
		m.Steps.WithLabelValues(wf, step, outcome).Inc()
		m.StepSeconds.WithLabelValues(wf, step).Observe(d.Seconds())
	}
}

func (m *Metrics) finished(wf, status string) {
	if m != nil {
		m.Finished.WithLabelValues(wf, status).Inc()
	}
}

func (m *Metrics) redrive(reason string) {
	if m != nil {
		m.Redrives.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) stale() {
	if m != nil {
		m.StaleWrites.Inc()
	}
}
