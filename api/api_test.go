package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// The API tests drive the real handler over a real store on an isolated
// Redis, through httptest. No worker runs, so new orders stay pending unless
// a test moves them with the store (see drive).

// testBundle is one API handler over one isolated Redis.
type testBundle struct {
	t *testing.T
	// h is the API, each request and answer checked against the OpenAPI
	// document (see openapi_check_test.go).
	h     http.Handler
	srv   *api.Server
	store *statemachine.Store
}

// setup builds the API over r.
func setup(t *testing.T, r *redistest.Instance) *testBundle {
	t.Helper()
	return setupWith(t, r.Client(t), api.Deps{})
}

// setupMini builds the API over a fresh miniredis, for tests that do not
// depend on the Redis backend.
func setupMini(t *testing.T, deps api.Deps) *testBundle {
	t.Helper()
	return setupWith(t, redistest.New(t, redistest.BackendMiniredis).Client(t), deps)
}

// setupWith builds the API over client; deps.Engine is filled in.
func setupWith(t *testing.T, client redis.UniversalClient, deps api.Deps) *testBundle {
	t.Helper()
	return setupConfig(t, client, api.Config{}, deps)
}

// setupConfig builds the API with cfg over client; deps.Engine is filled
// in, and a nil cfg.Logger discards.
func setupConfig(t *testing.T, client redis.UniversalClient, cfg api.Config, deps api.Deps) *testBundle {
	t.Helper()
	return setupQueue(t, client, cfg, deps, func(q engine.Queue) engine.Queue { return q })
}

// setupQueue is setupConfig with the engine's task queue wrapped by wrap.
func setupQueue(t *testing.T, client redis.UniversalClient, cfg api.Config, deps api.Deps, wrap func(engine.Queue) engine.Queue) *testBundle {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	require.NoError(t, cfg.Validate())
	store := statemachine.NewStore(client, statemachine.StoreConfig{})
	t.Cleanup(store.Close)
	eng, err := engine.New(engine.Config{Logger: cfg.Logger}, store, statemachine.NewOrderRegistry(), nil,
		wrap(tasks.NewQueue(client, tasks.QueueConfig{})), nil)
	require.NoError(t, err)
	deps.Engine = eng
	h := api.New(cfg, deps)
	t.Cleanup(h.Close)
	return &testBundle{t: t, h: checkedAgainstSpec(t, h), srv: h, store: store}
}

// response is a recorded answer.
type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

// do sends a request; headers are name, value pairs ("Host" sets the
// request's host, example.com by default).
func (b *testBundle) do(method, path, body string, headers ...string) *response {
	b.t.Helper()
	return b.doContext(context.Background(), method, path, body, headers...)
}

// doContext is do with the request's context: a stream (GET /v1/events)
// ends when ctx does.
func (b *testBundle) doContext(ctx context.Context, method, path, body string, headers ...string) *response {
	b.t.Helper()
	req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header[http.CanonicalHeaderKey(headers[i])] = []string{headers[i+1]}
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return &response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// get sends a GET.
func (b *testBundle) get(path string) *response {
	b.t.Helper()
	return b.do(http.MethodGet, path, "")
}

// post sends a JSON body to POST /v1/orders; body may be a string (sent as
// is) or a value (encoded).
func (b *testBundle) post(body any, headers ...string) *response {
	b.t.Helper()
	return b.do(http.MethodPost, "/v1/orders", asJSON(b.t, body), append([]string{"Content-Type", "application/json"}, headers...)...)
}

// create posts body and requires a new order (202, not a replay).
func (b *testBundle) create(body any, headers ...string) orders.Resource {
	b.t.Helper()
	res := b.post(body, headers...)
	require.Equal(b.t, http.StatusAccepted, res.Code, "body: %s", res.Body)
	require.Empty(b.t, res.Header.Get(api.HeaderReplayed))
	return decode[orders.Resource](b.t, res, http.StatusAccepted)
}

// cancel sends POST /v1/orders/{id}/cancel.
func (b *testBundle) cancel(id string) *response {
	b.t.Helper()
	return b.do(http.MethodPost, "/v1/orders/"+id+"/cancel", "")
}

// order reads GET /v1/orders/{id} and requires 200.
func (b *testBundle) order(id string) orders.Resource {
	b.t.Helper()
	return decode[orders.Resource](b.t, b.get("/v1/orders/"+id), http.StatusOK)
}

// listBody is the body of GET /v1/orders.
type listBody struct {
	Orders     []orders.Resource `json:"orders"`
	NextCursor string            `json:"next_cursor"`
}

// list reads GET /v1/orders with a query and requires 200.
func (b *testBundle) list(query string) listBody {
	b.t.Helper()
	return decode[listBody](b.t, b.get("/v1/orders?"+query), http.StatusOK)
}

// listIDs returns the IDs of one list page.
func (b *testBundle) listIDs(query string) []string {
	b.t.Helper()
	return ids(b.list(query).Orders)
}

// drive moves an order along the events given, as a worker would, holding
// its lease; it returns the instance's final state.
func (b *testBundle) drive(id string, events ...string) string {
	b.t.Helper()
	ctx := context.Background()
	def, err := statemachine.NewOrderRegistry().Get(statemachine.OrderWorkflow, 1)
	require.NoError(b.t, err)
	const token = "test-worker"
	in, err := b.store.Claim(ctx, id, token, time.Now().Add(time.Minute))
	require.NoError(b.t, err)
	state, rev := in.State, in.Rev
	for _, ev := range events {
		to, err := def.Destination(state, ev)
		require.NoError(b.t, err)
		st, _ := def.State(to)
		applied, err := b.store.Apply(ctx, statemachine.Change{
			ID: id, ExpectState: state, ExpectRev: rev, Lease: statemachine.LeaseHold, Token: token, KeepLease: true,
			State: to, Status: st.Status,
			Event: &statemachine.Event{Type: statemachine.EventTransition, Event: ev, From: state, To: to},
		})
		require.NoError(b.t, err)
		state, rev = to, applied.Rev
	}
	return state
}

// decode requires status and a JSON body, and decodes it.
func decode[T any](t *testing.T, res *response, status int) T {
	t.Helper()
	require.Equal(t, status, res.Code, "body: %s", res.Body)
	require.Contains(t, res.Header.Get("Content-Type"), "application/json")
	var v T
	require.NoError(t, json.Unmarshal(res.Body, &v), "body: %s", res.Body)
	return v
}

// requireProblem requires an RFC 9457 problem with the status and returns it.
func requireProblem(t *testing.T, res *response, status int) api.Problem {
	t.Helper()
	require.Equal(t, status, res.Code, "body: %s", res.Body)
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	var raw map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &raw), "body: %s", res.Body)
	for _, f := range []string{"type", "title", "status", "detail"} {
		require.Contains(t, raw, f, "problem %s", res.Body)
	}
	var p api.Problem
	require.NoError(t, json.Unmarshal(res.Body, &p))
	require.Equal(t, status, p.Status)
	require.True(t, strings.HasPrefix(p.Type, "https://"), "type %q is a URI", p.Type)
	require.NotEmpty(t, p.Title)
	require.NotEmpty(t, p.Detail)
	return p
}

// requireValidation requires a 400 validation problem naming field (a
// prefix such as "items[0].qty") and returns it.
func requireValidation(t *testing.T, res *response, field string) api.Problem {
	t.Helper()
	p := requireProblem(t, res, http.StatusBadRequest)
	require.NotEmpty(t, p.Errors, "validation problems list their fields: %s", res.Body)
	var fields []string
	for _, e := range p.Errors {
		require.NotEmpty(t, e.Field)
		require.NotEmpty(t, e.Message)
		fields = append(fields, e.Field)
	}
	require.True(t, anyHasPrefix(fields, field), "errors %v name %q", fields, field)
	return p
}

// requireRetryAfter requires a Retry-After of whole seconds.
func requireRetryAfter(t *testing.T, res *response) {
	t.Helper()
	require.Regexp(t, `^[1-9][0-9]*$`, res.Header.Get("Retry-After"))
}

func anyHasPrefix(ss []string, prefix string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// orderBody returns a valid order request, changed by mods.
func orderBody(mods ...func(o map[string]any)) map[string]any {
	o := map[string]any{
		"customer_id": "cust-42",
		"currency":    "USD",
		"items":       []any{item("SKU-ABC", 2, 2499)},
		"metadata":    map[string]any{"channel": "web"},
	}
	for _, m := range mods {
		m(o)
	}
	return o
}

// withID sets the order_id.
func withID(id string) func(map[string]any) {
	return func(o map[string]any) { o["order_id"] = id }
}

// with sets one field.
func with(field string, v any) func(map[string]any) {
	return func(o map[string]any) { o[field] = v }
}

// withItems sets the items.
func withItems(items ...any) func(map[string]any) { return with("items", items) }

// item is one order line; qty and price may be any JSON value.
func item(sku string, qty, unitPriceCents any) map[string]any {
	return map[string]any{"sku": sku, "qty": qty, "unit_price_cents": unitPriceCents}
}

// asJSON encodes v, or returns it if it is already a string.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func ids(rs []orders.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.OrderID
	}
	return out
}

// createN creates n orders with IDs prefix-000, prefix-001, ... in that
// order and returns their IDs, oldest first.
func (b *testBundle) createN(prefix string, n int) []string {
	b.t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
		b.create(orderBody(withID(out[i])))
	}
	return out
}

// reversed returns a reversed copy of s.
func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
