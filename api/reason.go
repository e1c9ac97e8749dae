package api

import (
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/orders"
)

// MaxReasonLen bounds the reason a signal or an operator action carries.
const MaxReasonLen = 512

// signalBody is the optional body of a signal: {"reason": "..."}.
type signalBody struct {
	Reason string `json:"reason"`
}

// readReason reads the optional {"reason": "..."} body of a signal or an
// operator action; a request without a body has no reason.
func readReason(c echo.Context) (string, error) {
	r := c.Request()
	if r.ContentLength == 0 && r.Header.Get(echo.HeaderContentType) == "" {
		return "", nil
	}
	body, err := readJSONBody(c)
	if err != nil || len(body) == 0 {
		return "", err
	}
	var b signalBody
	if err := decodeStrict(body, &b); err != nil {
		return "", err
	}
	if utf8.RuneCountInString(b.Reason) > MaxReasonLen || !utf8.ValidString(b.Reason) {
		return "", validationProblem([]orders.FieldError{{Field: "reason", Message: "must be at most 512 characters"}})
	}
	return b.Reason, nil
}
