package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
)

// requireProblemType requires a problem with the status and the type code.
func requireProblemType(t *testing.T, res *response, status int, code string) {
	t.Helper()
	p := requireProblem(t, res, status)
	require.Equal(t, api.ProblemType(code), p.Type)
}

// A web page can make a browser send a form or a text/plain body across
// sites without asking the server: every mutating request must carry JSON
// or nothing, with or without tokens.
func TestMutatingRequestsRefuseFormsAndText(t *testing.T) {
	t.Parallel()
	for name, b := range map[string]*testBundle{
		"without tokens": setupMini(t, api.Deps{}),
		"with tokens":    setupAuth(t, api.Config{}),
	} {
		auth := []string{}
		if name == "with tokens" {
			auth = bearer(admin)
		}
		b.create(orderBody(withID("target")), auth...)
		for _, tc := range []struct {
			name, contentType, body string
		}{
			{"form", "application/x-www-form-urlencoded", "reason=csrf"},
			{"empty form", "application/x-www-form-urlencoded", ""},
			{"multipart form", "multipart/form-data; boundary=x", "--x--"},
			{"text/plain", "text/plain", `{"reason":"csrf"}`},
			{"empty text/plain", "text/plain;charset=utf-8", ""},
			{"body without a type", "", `{"reason":"csrf"}`},
			{"other type", "application/octet-stream", ""},
			{"json lookalike", "text/x+json", `{}`},
		} {
			headers := append([]string{"Content-Type", tc.contentType}, auth...)
			res := b.do(http.MethodPost, "/v1/orders/target/cancel", tc.body, headers...)
			requireProblemType(t, res, http.StatusUnsupportedMediaType, "unsupported-media-type")
			res = b.do(http.MethodPost, "/v1/orders", asJSON(t, orderBody()), headers...)
			requireProblemType(t, res, http.StatusUnsupportedMediaType, "unsupported-media-type")
		}
		require.Equal(t, "running", decode[orders.Resource](t, b.do(http.MethodGet, "/v1/orders/target", "", auth...), http.StatusOK).Status, name)

		// JSON, or no body and no type at all (curl -X POST), goes through.
		res := b.do(http.MethodPost, "/v1/orders/target/cancel", `{"reason":"changed my mind"}`,
			append([]string{"Content-Type", "application/merge-patch+json"}, auth...)...)
		require.Equal(t, http.StatusAccepted, res.Code, "%s: %s", name, res.Body)
		res = b.do(http.MethodPost, "/v1/orders/target/cancel", "", auth...)
		require.Equal(t, http.StatusAccepted, res.Code, "%s: %s", name, res.Body)
	}
}

// A browser marks the requests it sends for another site; those are
// refused, and a page's own (same-origin) requests pass.
func TestCrossSiteBrowserRequestsAreRefused(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	b.create(orderBody(withID("target")))
	for name, headers := range map[string][]string{
		"Sec-Fetch-Site cross-site": {"Sec-Fetch-Site", "cross-site"},
		"Sec-Fetch-Site same-site":  {"Sec-Fetch-Site", "same-site"},
		"foreign Origin":            {"Origin", "http://evil.example"},
		"Origin on another port":    {"Origin", "http://example.com:8081"},
		"null Origin":               {"Origin", "null"},
		"cross-site JSON":           {"Sec-Fetch-Site", "cross-site", "Content-Type", "application/json"},
	} {
		res := b.do(http.MethodPost, "/v1/orders/target/cancel", "", headers...)
		require.Equal(t, http.StatusForbidden, res.Code, name)
		requireProblemType(t, res, http.StatusForbidden, "cross-site-request")
		res = b.do(http.MethodPost, "/v1/orders", asJSON(t, orderBody()), append([]string{"Content-Type", "application/json"}, headers...)...)
		requireProblemType(t, res, http.StatusForbidden, "cross-site-request")
	}
	require.Equal(t, "running", decode[orders.Resource](t, b.do(http.MethodGet, "/v1/orders/target", "", "Sec-Fetch-Site", "cross-site"), http.StatusOK).Status,
		"reads are not refused")

	for name, headers := range map[string][]string{
		"same-origin":               {"Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"},
		"user typed it":             {"Sec-Fetch-Site", "none"},
		"Origin of the Host":        {"Origin", "http://example.com"},
		"Origin with default port":  {"Origin", "http://example.com:80"},
		"Origin of the Host's port": {"Origin", "http://localhost:8080", "Host", "localhost:8080"},
	} {
		res := b.post(orderBody(), headers...)
		require.Equal(t, http.StatusAccepted, res.Code, "%s: %s", name, res.Body)
	}
}

// With RestrictHosts (no tokens, loopback), a request whose Host is not
// loopback, as under DNS rebinding, is refused; /healthz stays open.
func TestRestrictHosts(t *testing.T) {
	t.Parallel()
	b := setupConfig(t, redistest.New(t, redistest.BackendMiniredis).Client(t), api.Config{RestrictHosts: true}, api.Deps{})
	for _, host := range []string{"evil.example", "evil.example:8080", "example.com", "10.0.0.1:8080", "[2001:db8::1]:8080", "localhost.evil.example", ""} {
		requireProblemType(t, b.do(http.MethodGet, "/v1/orders", "", "Host", host), http.StatusForbidden, "host-not-allowed")
		requireProblemType(t, b.do(http.MethodPost, "/v1/orders", asJSON(t, orderBody()), "Host", host, "Content-Type", "application/json"),
			http.StatusForbidden, "host-not-allowed")
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/healthz", "", "Host", host).Code, "health stays open")
	}
	for _, host := range []string{"localhost", "LOCALHOST:8080", "localhost.:8080", "127.0.0.1:8080", "127.0.0.2", "[::1]:8080", "[::1]", "::1"} {
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/orders", "", "Host", host).Code, host)
	}
	b.create(orderBody(), "Host", "127.0.0.1:8080")

	open := setupMini(t, api.Deps{})
	require.Equal(t, http.StatusOK, open.do(http.MethodGet, "/v1/orders", "", "Host", "evil.example").Code, "off by default")
}
