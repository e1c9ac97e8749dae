package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
)

// The test tokens, one per kind of client.
var (
	writer = api.Token{Name: "shop", Secret: "writer-secret-0123456789", Scopes: []api.Scope{api.ScopeOrdersWrite}}
	reader = api.Token{Name: "report", Secret: "reader-secret-0123456789", Scopes: []api.Scope{api.ScopeOrdersRead}}
	admin  = api.Token{Name: "ops", Secret: "admin-secret-0123456789", Scopes: []api.Scope{api.ScopeAdmin}}
	both   = api.Token{Name: "app", Secret: "both-secret-0123456789", Scopes: []api.Scope{api.ScopeOrdersRead, api.ScopeOrdersWrite}}
)

// testTokens are all of them.
var testTokens = []api.Token{writer, reader, admin, both}

// bearer returns the header pair that authenticates as t.
func bearer(t api.Token) []string { return []string{"Authorization", "Bearer " + t.Secret} }

// echoMount is a mount that answers with the name of the request's token.
var echoMount = map[string]http.Handler{"/monitor": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte("token=" + api.TokenName(r.Context())))
})}

// setupAuth builds the API with the test tokens over a fresh miniredis.
func setupAuth(t *testing.T, cfg api.Config) *testBundle {
	t.Helper()
	cfg.Tokens = testTokens
	return setupConfig(t, redistest.New(t, redistest.BackendMiniredis).Client(t), cfg, api.Deps{Mounts: echoMount})
}

// route is one route of the API and the scope it needs.
type route struct {
	method, path, body string
	scope              api.Scope
}

var protectedRoutes = []route{
	{http.MethodPost, "/v1/orders", `{"customer_id":"c","currency":"USD","items":[{"sku":"S","qty":1,"unit_price_cents":1}]}`, api.ScopeOrdersWrite},
	{http.MethodPost, "/v1/orders/o-1/cancel", "", api.ScopeOrdersWrite},
	{http.MethodGet, "/v1/orders", "", api.ScopeOrdersRead},
	{http.MethodGet, "/v1/orders/o-1", "", api.ScopeOrdersRead},
	{http.MethodGet, "/v1/orders/o-1/history", "", api.ScopeOrdersRead},
	{http.MethodGet, "/v1/audit", "", api.ScopeAdmin},
	{http.MethodGet, "/v1/providers", "", api.ScopeOrdersRead},
	{http.MethodPost, "/v1/providers/payment/pause", "", api.ScopeAdmin},
	{http.MethodPost, "/v1/providers/payment/resume", "", api.ScopeAdmin},
	{http.MethodGet, "/v1/stats", "", api.ScopeOrdersRead},
	{http.MethodGet, "/v1/workflows", "", api.ScopeOrdersRead},
	{http.MethodGet, "/v1/workflows/order/1/diagram", "", api.ScopeOrdersRead},
	{http.MethodGet, "/metrics", "", api.ScopeAdmin},
	{http.MethodGet, "/monitor/", "", api.ScopeAdmin},
	{http.MethodDelete, "/monitor/api/queues/workflow", "", api.ScopeAdmin},
}

// send sends r with headers.
func (b *testBundle) send(r route, headers ...string) *response {
	b.t.Helper()
	return b.do(r.method, r.path, r.body, append([]string{"Content-Type", "application/json"}, headers...)...)
}

// requireUnauthorized requires a 401 problem with a Bearer challenge.
func requireUnauthorized(t *testing.T, res *response) {
	t.Helper()
	requireProblem(t, res, http.StatusUnauthorized)
	require.True(t, strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer "), res.Header.Get("WWW-Authenticate"))
}

func TestAuthRequiresABearerToken(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, api.Config{})
	require.Equal(t, http.StatusOK, b.get("/healthz").Code, "health needs no token")
	require.Equal(t, http.StatusOK, b.get("/readyz").Code, "readiness needs no token")
	routes := slices.Concat(protectedRoutes, []route{{method: http.MethodGet, path: "/no/such/route"}})
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			requireUnauthorized(t, b.send(r))
			for _, header := range []string{
				"Bearer not-a-configured-secret-at-all",
				"Bearer " + admin.Secret + "x",
				"Bearer " + strings.ToUpper(admin.Secret),
				"Basic " + admin.Secret,
				"Bearer",
				"Bearer ",
				admin.Secret,
			} {
				requireUnauthorized(t, b.send(r, "Authorization", header))
			}
		})
	}
	// The scheme is case-insensitive (RFC 7235).
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/orders", "", "Authorization", "bearer "+reader.Secret).Code)
}

func TestAuthScopes(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, api.Config{})
	for _, tok := range testTokens {
		for _, r := range protectedRoutes {
			t.Run(tok.Name+" "+r.method+" "+r.path, func(t *testing.T) {
				res := b.send(r, bearer(tok)...)
				allowed := tok.Scopes[0] == api.ScopeAdmin
				for _, s := range tok.Scopes {
					allowed = allowed || s == r.scope
				}
				if !allowed {
					requireProblem(t, res, http.StatusForbidden)
					require.Contains(t, res.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
					require.Contains(t, res.Header.Get("WWW-Authenticate"), string(r.scope))
					return
				}
				require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.Code, "body: %s", res.Body)
			})
		}
	}
	// A valid token on an unknown route: 404, not 403.
	requireProblem(t, b.do(http.MethodGet, "/no/such/route", "", bearer(reader)...), http.StatusNotFound)
}

// The token's name reaches handlers through the request's context.
func TestAuthPutsTheTokenNameIntoTheContext(t *testing.T) {
	t.Parallel()
	res := setupAuth(t, api.Config{}).do(http.MethodGet, "/monitor/", "", bearer(admin)...)
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "token=ops", string(res.Body))

	res = setupMini(t, api.Deps{Mounts: echoMount}).get("/monitor/")
	require.Equal(t, "token=", string(res.Body), "no token without authentication")
}

// Without tokens the API serves every route to everyone, as before.
func TestAuthOff(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{Mounts: echoMount})
	for _, r := range protectedRoutes {
		res := b.send(r)
		require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.Code, "%s %s: %s", r.method, r.path, res.Body)
	}
}

// No secret, valid or not, ever reaches a log line or an answer: not on
// success, refusal, rate limiting, validation errors, or with Redis down.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	// Every log line is written by a request, in this goroutine: no backlog
	// refresher runs.
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := redistest.New(t, redistest.BackendMiniredis)
	cfg := api.Config{Tokens: testTokens, RateLimit: 1, RateBurst: 2, MaxBacklog: -1, Logger: log}
	b := setupConfig(t, fastFailClient(t, r), cfg, api.Deps{Mounts: echoMount})

	const unknown = "unknown-secret-0123456789"
	var answers strings.Builder
	codes := map[int]int{}
	record := func(res *response) {
		codes[res.Code]++
		fmt.Fprintf(&answers, "%d %v %s\n", res.Code, res.Header, res.Body)
	}
	sendAll := func() {
		for _, tok := range testTokens {
			for _, rt := range protectedRoutes {
				record(b.send(rt, bearer(tok)...))
			}
			record(b.post(`{"bad json`, bearer(tok)...))
		}
		for _, header := range []string{"Bearer " + unknown, "Basic " + unknown, unknown} {
			record(b.do(http.MethodGet, "/v1/orders", "", "Authorization", header))
		}
	}
	sendAll()
	require.Positive(t, codes[http.StatusTooManyRequests], "some requests were rate limited: %v", codes)
	r.Stop() // failing rate-limit checks and stores log their errors
	sendAll()
	require.Contains(t, logs.String(), "rate limit check failed")
	require.Contains(t, logs.String(), `"token":"ops"`, "logs name the token")

	for _, secret := range append([]string{unknown}, secrets(testTokens)...) {
		require.NotContains(t, logs.String(), secret)
		require.NotContains(t, answers.String(), secret)
	}
}

func secrets(tokens []api.Token) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = t.Secret
	}
	return out
}

// With Redis down the rate-limit check lets requests through.
func TestRateLimitFailsOpen(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	b := setupConfig(t, fastFailClient(t, r), api.Config{Tokens: testTokens, RateLimit: 1, RateBurst: 1}, api.Deps{Mounts: echoMount})
	r.Stop()
	for range 5 {
		res := b.do(http.MethodGet, "/monitor/", "", bearer(admin)...)
		require.Equal(t, http.StatusOK, res.Code, "body: %s", res.Body)
	}
}

// fastFailClient is a client of r that does not retry, for tests that stop
// Redis: they are about the API's answers, not go-redis's retries.
func fastFailClient(t *testing.T, r *redistest.Instance) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
