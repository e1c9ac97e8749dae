package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/flowcontrol"
)

// The providers' flow control (API.md, "Providers (flow control)"). The
// state lives in Redis, shared with the workers: a pause takes effect at
// every worker's next attempt on the provider.

// providersBody is the answer of GET /v1/providers.
type providersBody struct {
	Providers []flowcontrol.Provider `json:"providers"`
}

// listProviders is GET /v1/providers (orders:read): each provider's state,
// rate limit, calls in flight, error rate and when its circuit opened.
func (s *Server) listProviders(c echo.Context) error {
	ps, err := s.providers.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, providersBody{Providers: ps})
}

// pauseProvider is POST /v1/providers/{name}/pause (admin): no step that
// calls the provider begins an attempt until it is resumed; running ones
// finish. Pausing a paused provider changes nothing.
func (s *Server) pauseProvider(c echo.Context) error {
	return s.operateProvider(c, "paused", s.providers.Pause)
}

// resumeProvider is POST /v1/providers/{name}/resume (admin).
func (s *Server) resumeProvider(c echo.Context) error {
	return s.operateProvider(c, "resumed", s.providers.Resume)
}

func (s *Server) operateProvider(c echo.Context, what string, action func(ctx context.Context, name string) (flowcontrol.Provider, error)) error {
	reason, err := readReason(c)
	if err != nil {
		return err
	}
	p, err := action(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	requestLog(s.log, c).Info("provider "+what+" by an operator", "provider", p.Name, "reason", reason)
	return c.JSON(http.StatusOK, p)
}
