package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// UIPath is where the dashboard's pages are served (Deps.UI).
const UIPath = "/ui"

// dashboard holds what the dashboard's endpoints share: the cached
// counts of GET /v1/stats and the hub behind GET /v1/events.
type dashboard struct {
	stats *statsCache
	hub   *eventHub
}

// routeDashboard registers what the dashboard needs: its pages at UIPath,
// without authentication (they are static files holding no data; every
// call they make for data goes through the API with the user's token),
// and the read-only endpoints it calls, each with the read scope:
//
//   - GET /v1/stats: counts per status, state, version and priority, and
//     the throughput of the last minutes (stats.go);
//   - GET /v1/events: a server-sent event stream of order changes
//     (events.go);
//   - GET /v1/workflows and GET /v1/workflows/{name}/{version}/diagram:
//     the workflow definitions, the signals each state takes, and an SVG
//     drawing with one order's path (workflows.go).
func (s *Server) routeDashboard(e *echo.Echo, read echo.MiddlewareFunc, ui http.Handler) *dashboard {
	d := &dashboard{stats: &statsCache{}, hub: newEventHub(s.store, s.log)}
	e.GET("/v1/stats", s.getStats, read)
	e.GET("/v1/events", s.streamEvents, read)
	e.GET("/v1/workflows", s.listWorkflows, read)
	e.GET("/v1/workflows/:name/:version/diagram", s.getDiagram, read)
	if ui != nil {
		e.GET(UIPath, echo.WrapHandler(ui))
		e.GET(UIPath+"/*", echo.WrapHandler(ui))
	}
	return d
}

// close ends every event stream.
func (d *dashboard) close() { d.hub.close() }
