package engine

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderflow/orderflow/statemachine"
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
	// ProviderUnexpected counts provider answers the contract does not
	// name (not a success, a decline, "in progress" or a retryable status).
	ProviderUnexpected *prometheus.CounterVec
	// DeadLetters counts steps parked for an operator after exhausting
	// their attempts (compensation, irreversible steps).
	DeadLetters *prometheus.CounterVec
	// DeadLetterOrders is how many instances have a parked step now, as
	// the reaper last counted.
	DeadLetterOrders prometheus.Gauge
	// FlowWaits counts attempts the flow control held back, by how they
	// waited (inline, delay, park).
	FlowWaits *prometheus.CounterVec
	// DueEntries is the size of the due index, as the reaper last read it.
	DueEntries prometheus.Gauge
	// DueLag is how long the oldest due entry has been due, in seconds
	// (0 when none is overdue): how far the reapers are behind.
	DueLag prometheus.Gauge
	// InstanceSeconds is how long finished instances took from creation
	// to their terminal state, by workflow and status: the end-to-end
	// latency.
	InstanceSeconds *prometheus.HistogramVec

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
		ProviderUnexpected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_provider_unexpected_total",
			Help: "Provider answers that are neither a success, a named decline, in progress, nor retryable (such as a 401 or a gateway 404); each is retried under the same key.",
		}, []string{"provider", "status"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_dead_letters_total", Help: "Steps parked for an operator after exhausting their attempts.",
		}, []string{"workflow", "step"}),
		DeadLetterOrders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_dead_letter_orders", Help: "Instances with a step parked for an operator (retry or resolve).",
		}),
	}
	m.FlowWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderflow_flow_waits_total", Help: "Step attempts held back by flow control (rate limits, concurrency limits, breakers), by how they waited.",
	}, []string{"workflow", "step", "how"})
	m.DueEntries = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_due_entries", Help: "Entries in the due index (unfinished instances the reaper watches).",
	})
	m.DueLag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orderflow_due_lag_seconds", Help: "Age of the oldest overdue entry of the due index: how far the reapers are behind.",
	})
	m.InstanceSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "orderflow_instance_duration_seconds", Help: "Time from an instance's creation to its terminal state (end-to-end latency), by status.",
		Buckets: prometheus.ExponentialBuckets(0.005, 3, 12),
	}, []string{"workflow", "status"})
	if reg != nil {
		reg.MustRegister(m.Transitions, m.Steps, m.StepSeconds, m.Finished, m.Redrives, m.StaleWrites, m.ProviderUnexpected,
			m.DeadLetters, m.DeadLetterOrders, m.FlowWaits, m.DueEntries, m.DueLag, m.InstanceSeconds)
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

// initialize creates the series whose labels the registry fixes, at zero,
// so that dashboards and alerts see them before the first event: a rate
// over a series that does not exist yet is no rate at all.
func (m *Metrics) initialize(reg *statemachine.Registry) {
	if m == nil {
		return
	}
	for _, d := range reg.All() {
		for _, st := range []statemachine.Status{statemachine.StatusCompleted, statemachine.StatusFailed, statemachine.StatusCancelled} {
			m.counter(m.Finished, d.Name, string(st))
		}
		for _, s := range d.States {
			if s.Step != "" {
				m.counter(m.DeadLetters, d.Name, s.Step)
			}
		}
	}
	for _, reason := range []string{"lease_expired", "task_lost"} { // see redrive in reaper.go
		m.Redrives.WithLabelValues(reason)
	}
}

func (m *Metrics) instanceDone(wf, status string, age time.Duration) {
	if m != nil && age > 0 {
		m.observer(m.InstanceSeconds, wf, status).Observe(age.Seconds())
	}
}

// age is how long ago the run's instance was created (a first task knows
// it from its hint, sent just before the instance was written).
func (r *run) age() time.Duration {
	created := r.inst.Created
	if created.IsZero() && r.hint != nil {
		created = r.hint.At
	}
	if created.IsZero() {
		return 0
	}
	return r.e.store.Now().Sub(created)
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

func (m *Metrics) unexpected(provider, status string) {
	if m != nil {
		m.counter(m.ProviderUnexpected, provider, status).Inc()
	}
}

func (m *Metrics) flowWait(wf, step, how string) {
	if m != nil {
		m.counter(m.FlowWaits, wf, step, how).Inc()
	}
}

func (m *Metrics) deadLettered(wf, step string) {
	if m != nil {
		m.counter(m.DeadLetters, wf, step).Inc()
	}
}
