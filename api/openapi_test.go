package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// notDescribed are the route prefixes the OpenAPI document leaves out on
// purpose: mounts that serve web UIs, not the API (asynqmon, the orders
// dashboard's static files). Everything else the server routes must be in
// the document, and everything in the document must be routed.
var notDescribed = []string{"/monitor", "/ui"}

// uiMounts stands in for the mounts the processes add (server.StartAPI).
var uiMounts = map[string]http.Handler{
	"/monitor": http.NotFoundHandler(),
	"/ui":      http.NotFoundHandler(),
}

// A route added to the server without the document, or a route documented
// and not served, fails here.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{Mounts: uiMounts})
	served := map[string]bool{}
	for _, r := range b.srv.Routes() {
		if slices.ContainsFunc(notDescribed, func(prefix string) bool { return r.Path == prefix || strings.HasPrefix(r.Path, prefix+"/") }) {
			continue
		}
		served[r.Method+" "+openAPIPath(r.Path)] = true
	}
	documented := map[string]bool{}
	doc := spec(t).doc
	for _, path := range doc.Paths.InMatchingOrder() {
		for method := range doc.Paths.Value(path).Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range served {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	require.Empty(t, missing, "routes the server serves that api/openapi.yaml does not describe")
	require.Empty(t, extra, "routes api/openapi.yaml describes that the server does not serve")
	require.NotEmpty(t, served)
}

// openAPIPath spells an Echo path as OpenAPI does.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// Every operation has an operationId (the coverage check counts them), a
// summary, and the errors every operation of its kind can answer.
func TestOpenAPIOperationsAreComplete(t *testing.T) {
	t.Parallel()
	doc := spec(t).doc
	ids := map[string]bool{}
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			name := method + " " + path
			require.NotEmpty(t, op.OperationID, name)
			require.False(t, ids[op.OperationID], "%s: operationId %s is used twice", name, op.OperationID)
			ids[op.OperationID] = true
			require.NotEmpty(t, op.Summary, name)
			public := op.Security != nil && len(*op.Security) == 0
			want := []string{"500"}
			if !public {
				want = append(want, "401", "403", "429")
			}
			if method == http.MethodPost {
				want = append(want, "400", "413", "415", "503")
			}
			if strings.Contains(path, "{order_id}") {
				want = append(want, "400", "404")
			}
			for _, status := range want {
				require.NotNil(t, op.Responses.Value(status), "%s documents no %s", name, status)
			}
		}
	}
}

// The states the document lists are the states of every registered
// workflow version.
func TestOpenAPIStatesAreTheWorkflowsStates(t *testing.T) {
	t.Parallel()
	var documented []string
	for _, v := range spec(t).doc.Components.Schemas["State"].Value.Enum {
		documented = append(documented, v.(string))
	}
	states := map[string]bool{}
	for _, d := range statemachine.NewOrderRegistry().All() {
		for _, s := range d.States {
			states[s.Name] = true
		}
	}
	require.ElementsMatch(t, slices.Sorted(maps.Keys(states)), documented)
}

// The document is served as YAML and as JSON, the same document, with no
// token even when tokens are on.
func TestOpenAPIIsServed(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, api.Config{})
	res := b.get("/openapi.yaml")
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "application/yaml", res.Header.Get("Content-Type"))
	require.Equal(t, api.OpenAPI(), res.Body)
	fromYAML, err := yaml.YAMLToJSON(res.Body)
	require.NoError(t, err)

	res = b.get("/openapi.json")
	require.Equal(t, http.StatusOK, res.Code)
	require.Contains(t, res.Header.Get("Content-Type"), "application/json")
	require.JSONEq(t, string(fromYAML), string(res.Body))
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
}

// The security each operation documents is the server's: without a token,
// public operations answer and the others are 401; with a token of another
// scope, 403; with the documented scope, neither.
func TestOpenAPISecurityIsTheServers(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, api.Config{RateLimit: -1})
	doc := spec(t).doc
	tokenOf := map[string]api.Token{string(api.ScopeOrdersWrite): writer, string(api.ScopeOrdersRead): reader, string(api.ScopeAdmin): admin}
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			target := pathParams.Replace(path)
			body := ""
			if target == "/v1/orders" && method == http.MethodPost {
				body = asJSON(t, orderBody(withID("sec-1")))
			}
			streamed := false
			if ok := op.Responses.Value("200"); ok != nil {
				_, streamed = ok.Value.Content["text/event-stream"]
			}
			send := func(headers ...string) *response {
				if body != "" {
					headers = append(headers, "Content-Type", "application/json")
				}
				ctx := context.Background()
				if streamed {
					// A stream allowed goes on until its client leaves.
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
					defer cancel()
				}
				return b.doContext(ctx, method, target, body, headers...)
			}
			t.Run(method+" "+path, func(t *testing.T) {
				if op.Security != nil && len(*op.Security) == 0 {
					require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, send().Code, "documented as public")
					return
				}
				require.Equal(t, http.StatusUnauthorized, send().Code, "documented as needing a token")
				require.NotNil(t, op.Security, "documents its scope")
				require.Len(t, *op.Security, 1)
				scopes := (*op.Security)[0]["bearer"]
				require.Len(t, scopes, 1, "one scope")
				tok, ok := tokenOf[scopes[0]]
				require.True(t, ok, "a known scope: %s", scopes[0])
				res := send(bearer(tok)...)
				require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.Code, "allowed with %s: %s", scopes[0], res.Body)
				for _, other := range []api.Token{writer, reader} {
					if other.Scopes[0] != api.Scope(scopes[0]) {
						requireProblem(t, send(bearer(other)...), http.StatusForbidden)
					}
				}
			})
		}
	}
}

// pathParams fills the document's path parameters with values that name
// something: an order (which need not exist), a provider, a workflow
// version.
var pathParams = strings.NewReplacer(
	"{order_id}", "sec-1",
	"/v1/providers/{name}/", "/v1/providers/payment/",
	"/v1/workflows/{name}/{version}/", "/v1/workflows/order/1/",
)

// The operations the other tests leave out, each with its success and its
// errors, so that every operation and every documented status is seen
// answering (TestMain checks it after a full run).
func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	t.Run("signals", func(t *testing.T) {
		t.Parallel()
		b := setupRegistry(t, v2Registry(t))
		b.create(orderBody(withID("sig-1")))
		for _, sig := range []string{"pause", "resume"} {
			res := b.do(http.MethodPost, "/v1/orders/sig-1/"+sig, `{"reason":"ops"}`, "Content-Type", "application/json")
			require.Equal(t, http.StatusAccepted, res.Code, "%s: %s", sig, res.Body)
		}
		b.create(orderBody(withID("sig-2")))
		requireProblem(t, b.do(http.MethodPost, "/v1/orders/sig-2/resume", ""), http.StatusConflict)
		requireProblem(t, b.do(http.MethodPost, "/v1/orders/sig-1/approve", ""), http.StatusConflict)
		requireProblem(t, b.do(http.MethodPost, "/v1/orders/sig-1/reject", ""), http.StatusConflict)
		requireProblem(t, b.do(http.MethodPost, "/v1/orders/nope/pause", ""), http.StatusNotFound)
		requireValidation(t, b.do(http.MethodPost, "/v1/orders/sig-1/pause", `{"reason":"`+strings.Repeat("x", 513)+`"}`, "Content-Type", "application/json"), "reason")
		requireProblem(t, b.do(http.MethodPost, "/v1/orders/sig-1/pause", "reason", "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
		requireProblem(t, b.do(http.MethodPost, "/v1/orders/sig-1/pause", `{"reason":"`+strings.Repeat("x", api.MaxBodyBytes)+`"}`, "Content-Type", "application/json"), http.StatusRequestEntityTooLarge)

		for _, tc := range []struct{ id, signal string }{{"review-a", "approve"}, {"review-r", "reject"}} {
			b.create(orderBody(withID(tc.id)))
			driveV2(t, b, tc.id, "start", "review")
			res := b.do(http.MethodPost, "/v1/orders/"+tc.id+"/"+tc.signal, `{"reason":"called the customer"}`, "Content-Type", "application/json")
			require.Equal(t, http.StatusAccepted, res.Code, "%s: %s", tc.signal, res.Body)
			res = b.do(http.MethodPost, "/v1/orders/"+tc.id+"/"+tc.signal, "")
			require.Equal(t, http.StatusAccepted, res.Code, "a replay: %s", res.Body)
			require.Equal(t, "true", res.Header.Get(api.HeaderReplayed))
		}
		b.create(orderBody(withID("review-o")))
		driveV2(t, b, "review-o", "start", "review")
		o := b.order("review-o")
		require.Equal(t, statemachine.OrderInReview, o.State)
		require.NotNil(t, o.Review)
	})
	t.Run("dead letters", func(t *testing.T) {
		t.Parallel()
		b := setupMini(t, api.Deps{})
		for _, id := range []string{"dl-retry", "dl-resolve"} {
			b.create(orderBody(withID(id)))
			require.Equal(t, statemachine.OrderRefunding, b.drive(id, "start", "reserved", "charged", "ship_failed"))
			park(t, b, id, statemachine.StepRefund)
			require.NotNil(t, b.order(id).DeadLetter)
		}
		for _, action := range []string{"retry", "resolve"} {
			res := b.do(http.MethodPost, "/v1/orders/dl-"+action+"/"+action, `{"reason":"refunded by hand"}`, "Content-Type", "application/json")
			require.Equal(t, http.StatusAccepted, res.Code, "%s: %s", action, res.Body)
			requireProblem(t, b.do(http.MethodPost, "/v1/orders/dl-"+action+"/"+action, ""), http.StatusConflict)
			requireProblem(t, b.do(http.MethodPost, "/v1/orders/none/"+action, ""), http.StatusNotFound)
			requireValidation(t, b.do(http.MethodPost, "/v1/orders/bad%20id/"+action, ""), "order_id")
		}
		require.Len(t, b.list("dead_letter=true").Orders, 0)
	})
	t.Run("rate limited", func(t *testing.T) {
		t.Parallel()
		b := setupAuth(t, api.Config{RateLimit: 1, RateBurst: 1})
		var res *response
		for range 5 {
			if res = b.do(http.MethodGet, "/v1/orders", "", bearer(reader)...); res.Code == http.StatusTooManyRequests {
				break
			}
		}
		requireProblem(t, res, http.StatusTooManyRequests)
		requireRetryAfter(t, res)
	})
	t.Run("host not allowed", func(t *testing.T) {
		t.Parallel()
		b := setupConfig(t, redistest.New(t, redistest.BackendMiniredis).Client(t), api.Config{RestrictHosts: true}, api.Deps{})
		for _, path := range []string{"/readyz", "/openapi.json", "/v1/orders"} {
			requireProblem(t, b.do(http.MethodGet, path, "", "Host", "evil.example"), http.StatusForbidden)
		}
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/readyz", "", "Host", "127.0.0.1:8080").Code)
	})
}

// v2Registry is the order registry with version 2 the default.
func v2Registry(t *testing.T) *statemachine.Registry {
	t.Helper()
	reg, err := statemachine.OrderRegistry(statemachine.OrderV2Options{}, 2)
	require.NoError(t, err)
	return reg
}

// setupRegistry builds the API over a fresh miniredis with reg's workflow
// versions.
func setupRegistry(t *testing.T, reg *statemachine.Registry) *testBundle {
	t.Helper()
	client := redistest.New(t, redistest.BackendMiniredis).Client(t)
	log := slog.New(slog.DiscardHandler)
	store := statemachine.NewStore(client, statemachine.StoreConfig{})
	t.Cleanup(store.Close)
	eng, err := engine.New(engine.Config{Logger: log}, store, reg, nil, tasks.NewQueue(client, tasks.QueueConfig{}), nil)
	require.NoError(t, err)
	h := api.New(api.Config{Logger: log}, api.Deps{Engine: eng})
	t.Cleanup(h.Close)
	return &testBundle{t: t, h: checkedAgainstSpec(t, h), srv: h, store: store}
}

// driveV2 moves a version 2 order along events, as a worker would; a
// waiting state it enters gets a deadline an hour away.
func driveV2(t *testing.T, b *testBundle, id string, events ...string) {
	t.Helper()
	ctx := context.Background()
	def, err := v2Registry(t).Get(statemachine.OrderWorkflow, 2)
	require.NoError(t, err)
	const token = "test-worker"
	in, err := b.store.Claim(ctx, id, token, time.Now().Add(time.Minute))
	require.NoError(t, err)
	state, rev := in.State, in.Rev
	for _, ev := range events {
		to, err := def.Destination(state, ev)
		require.NoError(t, err)
		st, _ := def.State(to)
		var f statemachine.Fields
		if st.Waiting() {
			f.Deadline(time.Now().Add(time.Hour))
		}
		applied, err := b.store.Apply(ctx, statemachine.Change{
			ID: id, ExpectState: state, ExpectRev: rev, Lease: statemachine.LeaseHold, Token: token, KeepLease: true,
			State: to, Status: st.Status, Fields: f,
			Event: &statemachine.Event{Type: statemachine.EventTransition, Event: ev, From: state, To: to},
		})
		require.NoError(t, err)
		state, rev = to, applied.Rev
	}
	require.NoError(t, b.store.Release(ctx, id, token))
}

// park dead-letters the order's current step, as the engine does after its
// last attempt.
func park(t *testing.T, b *testBundle, id, step string) {
	t.Helper()
	ctx := context.Background()
	in, err := b.store.Load(ctx, id)
	require.NoError(t, err)
	var f statemachine.Fields
	f.DeadLetter(step)
	_, err = b.store.Apply(ctx, statemachine.Change{
		ID: id, ExpectState: in.State, ExpectRev: in.Rev, Lease: statemachine.LeaseIgnore,
		State: in.State, Status: in.Status, Fields: f,
		Event: &statemachine.Event{Type: statemachine.EventDeadLettered, Step: step},
	})
	require.NoError(t, err)
	require.NoError(t, b.store.Park(ctx, id, time.Now(), time.Now().Add(time.Hour)))
}
