package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/orders"
)

// getAudit is GET /v1/audit (admin): it checks every order against the
// provider ledgers (package audit) and answers 200 with the report; the
// report's violations say whether the system is clean. ?max_running=
// overrides how long an order may stay unfinished (default 1h).
//
// The report is streamed as the audit goes, a batch of orders at a time,
// so memory does not grow with the number of orders. A Redis failure before
// anything was sent is a 503 problem; one after that aborts the response,
// so that a client never takes a truncated report for a whole one.
func (s *Server) getAudit(c echo.Context) error {
	cfg := audit.Config{Shards: s.store.Shards().N()}
	if v := c.QueryParam("max_running"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return validationProblem([]orders.FieldError{{Field: "max_running", Message: "must be a positive duration, such as 30m"}})
		}
		cfg.MaxRunning = d
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	if _, err := audit.WriteJSON(c.Request().Context(), res, s.store.Redis(), cfg); err != nil {
		if !res.Committed {
			res.Header().Del(echo.HeaderContentType) // the problem's own goes out instead
			return err
		}
		if c.Request().Context().Err() == nil {
			requestLog(s.log, c).Error("audit failed while its report was being sent: aborting the response", "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}
