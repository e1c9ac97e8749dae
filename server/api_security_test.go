package server_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/server"
)

var opsToken = api.Token{Name: "ops", Secret: "ops-secret-0123456789", Scopes: []api.Scope{api.ScopeAdmin}}

// Without tokens the API listens on loopback only, unless InsecureListen.
func TestAPIConfigValidateListen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		listen   string
		loopback bool
	}{
		{"", true}, // the default, 127.0.0.1:8080
		{"127.0.0.1:0", true},
		{"127.1.2.3:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"LOCALHOST:8080", true},
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"10.0.0.5:8080", false},
		{"api.example.com:8080", false},
		{"garbage", false},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			t.Parallel()
			err := server.APIConfig{Listen: tc.listen}.Validate()
			if tc.loopback {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, server.ErrInsecureListen)
			}
			require.NoError(t, server.APIConfig{Listen: tc.listen, InsecureListen: true}.Validate())
			cfg := server.APIConfig{Listen: tc.listen}
			cfg.API.Tokens = []api.Token{opsToken}
			require.NoError(t, cfg.Validate(), "with tokens any address is fine")
		})
	}
	cfg := server.APIConfig{}
	cfg.API.Tokens = []api.Token{{Name: "weak", Secret: "short", Scopes: []api.Scope{api.ScopeAdmin}}}
	err := cfg.Validate()
	require.ErrorContains(t, err, `token "weak"`)
	require.False(t, errors.Is(err, server.ErrInsecureListen))
}

func TestStartAPIValidates(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	_, err := server.StartAPI(openRedis(t, r), server.APIConfig{Listen: "0.0.0.0:0", Logger: discard}, nil)
	require.ErrorIs(t, err, server.ErrInsecureListen)
}

// With tokens every route but health needs a token, asynqmon and the
// metrics included.
func TestStartAPIWithTokens(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	cfg := server.APIConfig{}
	cfg.API.Tokens = []api.Token{opsToken}
	p := startAPI(t, r, cfg)
	get(t, p.URL()+"/healthz")
	for _, path := range []string{"/metrics", "/monitor/", "/monitor/api/queues", "/v1/orders", "/v1/audit"} {
		require.Equal(t, http.StatusUnauthorized, do(t, http.MethodGet, p.URL()+path, "").Code, path)
		req, err := http.NewRequest(http.MethodGet, p.URL()+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+opsToken.Secret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

// hostGet sends GET path to p with the Host header host.
func hostGet(t *testing.T, p *server.APIProcess, path, host string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, p.URL()+path, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// Without tokens and on loopback, the API answers only requests addressed
// to a loopback name (DNS rebinding); with --insecure-listen or tokens the
// Host is not restricted.
func TestStartAPIRestrictsHostsWithoutTokens(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	p := startAPI(t, r, server.APIConfig{})
	require.Equal(t, http.StatusForbidden, hostGet(t, p, "/v1/orders", "evil.example:8080"))
	require.Equal(t, http.StatusOK, hostGet(t, p, "/healthz", "evil.example:8080"))
	require.Equal(t, http.StatusOK, hostGet(t, p, "/v1/orders", "localhost:8080"))
	get(t, p.URL()+"/v1/orders")

	insecure := startAPI(t, r, server.APIConfig{InsecureListen: true})
	require.Equal(t, http.StatusOK, hostGet(t, insecure, "/v1/orders", "evil.example:8080"))

	cfg := server.APIConfig{}
	cfg.API.Tokens = []api.Token{opsToken}
	withTokens := startAPI(t, r, cfg)
	require.Equal(t, http.StatusUnauthorized, hostGet(t, withTokens, "/v1/orders", "evil.example:8080"))
}

// A form posted across sites cannot cancel an order; curl's bodyless POST
// can.
func TestStartAPIRefusesForms(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	p := startAPI(t, r, server.APIConfig{})
	res := do(t, http.MethodPost, p.URL()+"/v1/orders", `{"order_id":"o-1","customer_id":"c","currency":"USD","items":[{"sku":"S","qty":1,"unit_price_cents":1}]}`)
	require.Equal(t, http.StatusAccepted, res.Code, res.Body)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL()+"/v1/orders/o-1/cancel", strings.NewReader("reason=csrf"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	req.Header.Del("Origin")
	req.Body = io.NopCloser(strings.NewReader("reason=csrf"))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)

	require.Equal(t, http.StatusAccepted, do(t, http.MethodPost, p.URL()+"/v1/orders/o-1/cancel", "").Code)
}
