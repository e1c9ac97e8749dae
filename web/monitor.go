// Package web serves orderflow's operator pages inside the API process:
// the orders dashboard (ui.go, at /ui/: orders, their history and
// workflow diagram, live, and the providers' flow control), and asynqmon
// (at /monitor/) for the queues and tasks underneath.
package web

import (
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// MonitorPath is where asynqmon is mounted.
const MonitorPath = "/monitor"

// NewMonitor returns asynqmon rooted at MonitorPath. readOnly forbids every
// action (deleting, archiving, running tasks) on the server side. Close it
// when done: it owns its Redis connections.
func NewMonitor(conn asynq.RedisConnOpt, readOnly bool) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:     MonitorPath,
		RedisConnOpt: conn,
		ReadOnly:     readOnly,
	})
}
