package providers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/internal/tracing"
)

// DefaultHTTPTimeout bounds one provider call when HTTPConfig.Timeout is 0.
const DefaultHTTPTimeout = 5 * time.Second

// maxAnswerBytes bounds how much of an answer the client reads, and how much
// more it drains so that the connection can be reused.
const maxAnswerBytes = 64 << 10

// HTTPConfig configures the HTTP clients of the providers.
type HTTPConfig struct {
	// InventoryURL is the inventory provider's base URL; it may carry a
	// path prefix, as in http://127.0.0.1:8081/inventory. Required.
	InventoryURL string
	// PaymentURL is the payment provider's base URL. Required.
	PaymentURL string
	// ShippingURL is the shipping provider's base URL. Required.
	ShippingURL string
	// RiskURL is the risk-assessment agent's base URL (workflow v2).
	// Default: none, and every Assess call then fails with
	// ErrNoRiskProvider.
	RiskURL string
	// Timeout bounds each call, answer included. Default: DefaultHTTPTimeout
	// (5s).
	Timeout time.Duration
	// Client sends the requests. Default: a client of its own whose
	// transport keeps up to 100 idle connections per host.
	Client *http.Client
	// TracerProvider makes the calls' spans (see client_tracing.go).
	// Default: OpenTelemetry's global provider, a no-op unless
	// tracing.Setup installed one.
	TracerProvider trace.TracerProvider
}

// WithDefaults returns the config with its zero fields set to their
// defaults.
func (c HTTPConfig) WithDefaults() HTTPConfig {
	c.Timeout = cmp.Or(c.Timeout, DefaultHTTPTimeout)
	if c.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 100
		t.MaxIdleConnsPerHost = 100
		c.Client = &http.Client{Transport: t}
	}
	return c
}

// validate reports the first field that cannot work.
func (c HTTPConfig) validate() error {
	for _, f := range []struct{ name, url string }{
		{"InventoryURL", c.InventoryURL},
		{"PaymentURL", c.PaymentURL},
		{"ShippingURL", c.ShippingURL},
	} {
		if err := validateBaseURL(f.url); err != nil {
			return fmt.Errorf("providers: HTTPConfig.%s: %w", f.name, err)
		}
	}
	if c.RiskURL != "" {
		if err := validateBaseURL(c.RiskURL); err != nil {
			return fmt.Errorf("providers: HTTPConfig.RiskURL: %w", err)
		}
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("providers: HTTPConfig.Timeout must be positive, got %v", c.Timeout)
	}
	return nil
}

func validateBaseURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry a query or fragment", s)
	}
	return nil
}

// NewHTTP returns the providers as HTTP clients of the contract in
// PROVIDERS.md. A client never retries: it classifies each answer as an
// *Error, and the engine decides. Set.Risk is never nil: without a RiskURL
// its calls fail with ErrNoRiskProvider.
func NewHTTP(cfg HTTPConfig) (Set, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return Set{}, err
	}
	c := &httpClient{
		hc:        cfg.Client,
		tracer:    tracing.Tracer(cfg.TracerProvider),
		timeout:   cfg.Timeout,
		inventory: strings.TrimRight(cfg.InventoryURL, "/"),
		payment:   strings.TrimRight(cfg.PaymentURL, "/"),
		shipping:  strings.TrimRight(cfg.ShippingURL, "/"),
		risk:      strings.TrimRight(cfg.RiskURL, "/"),
	}
	return Set{Inventory: c, Payment: c, Shipping: c, Risk: c}, nil
}

// httpClient implements Inventory, Payment, Shipping and Risk over HTTP.
type httpClient struct {
	hc                                 *http.Client
	tracer                             trace.Tracer
	timeout                            time.Duration
	inventory, payment, shipping, risk string
}

// httpAnswer holds every field a provider answers with.
type httpAnswer struct {
	ReservationID  string `json:"reservation_id"`
	TransactionID  string `json:"transaction_id"`
	RefundID       string `json:"refund_id"`
	TrackingNumber string `json:"tracking_number"`
	// Refunded is false in a refund's answer when there was nothing to
	// refund; absent otherwise.
	Refunded *bool  `json:"refunded"`
	Error    string `json:"error"`
	// Decision and Reason answer an assessment.
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	// ShipmentID, Status and Progress describe a long-running shipment.
	ShipmentID string `json:"shipment_id"`
	Status     string `json:"status"`
	Progress   int    `json:"progress"`
}

// carries returns an ID picker for post: a success must carry a non-empty
// ID.
func carries(field func(*httpAnswer) string) func(*httpAnswer) (string, bool) {
	return func(a *httpAnswer) (string, bool) {
		id := field(a)
		return id, id != ""
	}
}

// Reserve implements Inventory.
func (c *httpClient) Reserve(ctx context.Context, r ReserveRequest) (string, error) {
	return c.post(ctx, ProviderInventory, OpReserve, c.inventory+"/reservations", r.IdempotencyKey, r,
		carries(func(a *httpAnswer) string { return a.ReservationID }))
}

// Release implements Inventory. An empty reservation ID names no
// reservation, so releasing it succeeds without a call.
func (c *httpClient) Release(ctx context.Context, r ReleaseRequest) error {
	if r.ReservationID == "" {
		return nil
	}
	body := struct {
		OrderID string `json:"order_id,omitempty"`
	}{r.OrderID}
	u := c.inventory + "/reservations/" + url.PathEscape(r.ReservationID) + "/release"
	_, err := c.post(ctx, ProviderInventory, OpRelease, u, r.IdempotencyKey, body, nil)
	return err
}

// Charge implements Payment.
func (c *httpClient) Charge(ctx context.Context, r ChargeRequest) (string, error) {
	return c.post(ctx, ProviderPayment, OpCharge, c.payment+"/charges", r.IdempotencyKey, r,
		carries(func(a *httpAnswer) string { return a.TransactionID }))
}

// Refund implements Payment. It sends an empty transaction ID as it is,
// asking the provider to refund the charge made under the charge key, and
// returns "" with no error when the provider answers that there was
// nothing to refund ({"refund_id":"","refunded":false}).
func (c *httpClient) Refund(ctx context.Context, r RefundRequest) (string, error) {
	return c.post(ctx, ProviderPayment, OpRefund, c.payment+"/refunds", r.IdempotencyKey, r,
		func(a *httpAnswer) (string, bool) {
			nothing := a.Refunded != nil && !*a.Refunded
			return a.RefundID, a.RefundID != "" || nothing
		})
}

// Ship implements Shipping.
func (c *httpClient) Ship(ctx context.Context, r ShipRequest) (string, error) {
	return c.post(ctx, ProviderShipping, OpShip, c.shipping+"/shipments", r.IdempotencyKey, r,
		carries(func(a *httpAnswer) string { return a.TrackingNumber }))
}

// post sends one call and classifies its answer. idFunc picks the ID a
// success carries, and reports false when the success lacks what it must
// carry; nil means a success carries nothing.
func (c *httpClient) post(ctx context.Context, provider, op, u, key string, body any, idFunc func(*httpAnswer) (string, bool)) (string, error) {
	x := exchange{provider: provider, op: op, method: http.MethodPost, url: u, key: key, body: body}
	status, a, decodeErr, err := c.send(ctx, x)
	if err != nil {
		return "", err
	}
	// A success whose answer cannot be read applied its effect, but the ID
	// is lost: that is as ambiguous as no answer, and a retry with the same
	// key reads the answer again.
	if decodeErr != nil && idFunc != nil {
		return "", x.fail(0, fmt.Errorf("reading %d answer: %w", status, decodeErr))
	}
	if idFunc == nil {
		return "", nil
	}
	id, ok := idFunc(&a)
	if !ok {
		return "", x.fail(0, fmt.Errorf("%d answer carries no ID", status))
	}
	return id, nil
}

// exchange is one request to a provider.
type exchange struct {
	provider, op string
	method, url  string
	// key is the Idempotency-Key, or "" for none (a read).
	key string
	// body is sent as JSON; nil sends none.
	body any
	// prefer is the Prefer header, or "".
	prefer string
}

// fail returns the *Error of x with status and err.
func (x exchange) fail(status int, err error) *Error {
	return &Error{Provider: x.provider, Op: x.op, Status: status, Err: err}
}

// send sends x and returns the status of a 2xx answer with the answer
// decoded, and decodeErr when its body could not be read or decoded, for
// the caller to judge. Every other outcome is an *Error: no answer, or a
// status other than 2xx with the answer's error code and Retry-After.
func (c *httpClient) send(ctx context.Context, x exchange) (status int, a httpAnswer, decodeErr, err error) {
	ctx, span := c.startCall(ctx, x)
	answered := 0
	defer func() { endCall(span, answered, cmp.Or(err, decodeErr)) }()
	var payload io.Reader
	if x.body != nil {
		b, err := json.Marshal(x.body)
		if err != nil {
			return 0, a, nil, x.fail(0, fmt.Errorf("encoding request: %w", err))
		}
		payload = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, x.method, x.url, payload)
	if err != nil {
		return 0, a, nil, x.fail(0, fmt.Errorf("building request: %w", err))
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if x.key != "" {
		req.Header.Set("Idempotency-Key", x.key)
	}
	if x.prefer != "" {
		req.Header.Set("Prefer", x.prefer)
	}
	inject(ctx, req.Header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, a, nil, x.fail(0, err)
	}
	answered = resp.StatusCode
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		_ = resp.Body.Close()
	}()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	decodeErr = cmp.Or(readErr, json.Unmarshal(data, &a))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := x.fail(resp.StatusCode, nil)
		e.Code = a.Error
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return 0, a, nil, e
	}
	return resp.StatusCode, a, decodeErr, nil
}
