package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/orders"
)

// getAudit is GET /v1/audit (admin): it checks every order against the
// provider ledgers (package audit) and returns the report with 200; the
// report's violations say whether the system is clean. ?max_running=
// overrides how long an order may stay unfinished (default 1h).
func (s *Server) getAudit(c echo.Context) error {
	var cfg audit.Config
	if v := c.QueryParam("max_running"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return validationProblem([]orders.FieldError{{Field: "max_running", Message: "must be a positive duration, such as 30m"}})
		}
		cfg.MaxRunning = d
	}
	rep, err := audit.Run(c.Request().Context(), s.store.Redis(), cfg)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}
