package engine

import (
	"fmt"
	"strings"
	"sync"
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

	// children caches the labelled children of the vectors: looking labels
	// up on every transition showed in profiles.
	children sync.Map // string -> prometheus.Counter or prometheus.Observer
}

// counter returns the child of vec for labels, from the cache.
func (m *Metrics) counter(vec *prometheus.CounterVec, labels ...string) prometheus.Counter {
	k := fmt.Sprintf("%p\x00%s", vec, strings.Join(labels, "\x00"))
	if c, ok := m.children.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c := vec.WithLabelValues(labels...)
	m.children.Store(k, c)
	return c
}

// observer returns the child of vec for labels, from the cache.
func (m *Metrics) observer(vec *prometheus.HistogramVec, labels ...string) prometheus.Observer {
	k := fmt.Sprintf("%p\x00%s", vec, strings.Join(labels, "\x00"))
	if o, ok := m.children.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o := vec.WithLabelValues(labels...)
	m.children.Store(k, o)
	return o
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
		m.counter(m.Transitions, wf, from, to, event).Inc()
	}
}

func (m *Metrics) step(wf, step, outcome string, d time.Duration) {
	if m != nil {
		m.counter(m.Steps, wf, step, outcome).Inc()
		m.observer(m.StepSeconds, wf, step).Observe(d.Seconds())
	}
}

func (m *Metrics) finished(wf, status string) {
	if m != nil {
		m.counter(m.Finished, wf, status).Inc()
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
