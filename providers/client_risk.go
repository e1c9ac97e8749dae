package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNoRiskProvider is the error of an Assess call from a client built
// without HTTPConfig.RiskURL. It comes wrapped in an *Error.
var ErrNoRiskProvider = errors.New("no risk provider configured (HTTPConfig.RiskURL, --risk-url)")

// Assess implements Risk: POST {risk}/assessments. A 200 whose decision is
// not one of the three, or that cannot be read, is ambiguous (an *Error
// with Status 0); a retry under the same key reads the decision again.
func (c *httpClient) Assess(ctx context.Context, r AssessRequest) (Assessment, error) {
	x := exchange{provider: ProviderRisk, op: OpAssess, method: http.MethodPost, url: c.risk + "/assessments", key: r.IdempotencyKey, body: r}
	if c.risk == "" {
		return Assessment{}, x.fail(0, ErrNoRiskProvider)
	}
	status, a, decodeErr, err := c.send(ctx, x)
	switch {
	case err != nil:
		return Assessment{}, err
	case decodeErr != nil:
		return Assessment{}, x.fail(0, fmt.Errorf("reading %d answer: %w", status, decodeErr))
	case !knownDecision(a.Decision):
		return Assessment{}, x.fail(0, fmt.Errorf("%d answer has no known decision: %q", status, a.Decision))
	}
	return Assessment{Decision: a.Decision, Reason: a.Reason}, nil
}
