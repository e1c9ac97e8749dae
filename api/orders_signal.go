package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// The signals an order takes over the API (API.md, "Signals"): POST
// /v1/orders/{order_id}/{signal}, with an optional body {"reason": "..."}
// that the history keeps. Each is idempotent (a replay is 202 with
// Idempotent-Replayed: true) and 409 where the order's state does not take
// it.
var signals = []string{
	statemachine.SignalCancel, statemachine.SignalApprove, statemachine.SignalReject,
	engine.SignalPause, engine.SignalResume,
}

// signalOrder returns the handler of one signal.
func (s *Server) signalOrder(signal string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := orderID(c)
		if err != nil {
			return err
		}
		reason, err := readReason(c)
		if err != nil {
			return err
		}
		outcome, in, err := s.eng.Signal(c.Request().Context(), id, signal, reason)
		if err != nil {
			return err
		}
		switch outcome {
		case engine.SignalRejected:
			return refusedSignal(signal, in)
		case engine.SignalReplayed:
			c.Response().Header().Set(HeaderReplayed, "true")
		}
		return c.JSON(http.StatusAccepted, orders.NewResource(in))
	}
}

// refusedSignal is the 409 of a signal the order's state does not take.
func refusedSignal(signal string, in *statemachine.Instance) *Problem {
	if signal == statemachine.SignalCancel {
		detail := "the order is " + string(in.Status) + " and cannot be cancelled"
		if !in.Status.Terminal() {
			detail = "the order is " + in.State + ": "
			if in.Reason == statemachine.ReasonFailed {
				detail += "it is already undoing its steps after a failure"
			} else {
				detail += "it is past the point of no return"
			}
		}
		return problem(http.StatusConflict, codeNotCancelable, "Not cancellable", detail)
	}
	detail := "the order is " + in.State + " and does not take " + signal
	switch {
	case in.Status.Terminal():
		detail = "the order is " + string(in.Status) + " and takes no more signals"
	case signal == engine.SignalResume:
		detail = "the order is not paused"
	}
	return problem(http.StatusConflict, codeSignalRefused, "Signal not accepted", detail)
}
