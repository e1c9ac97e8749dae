// Package deploy holds what operators deploy next to orderflow, and the
// test that keeps it true to the code:
//
//   - grafana/orderflow.json, a Grafana dashboard over the metrics the
//     workers and the API serve at /metrics: throughput, end-to-end and step
//     latency, retries, compensation, dead letters, the task queues, the
//     reapers and the providers;
//   - prometheus/alerts.yml, Prometheus alert rules: orders stuck, dead
//     letters and failing compensation, a growing backlog, a provider that
//     fails often or answers what its contract does not name.
//
// The test runs an order through a real system and requires every metric
// the two files name to be served, and every metric the code declares to be
// on the dashboard.
package deploy
