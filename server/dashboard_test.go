package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/server"
)

// The dashboard's pages need no token; the data they show does.
func TestStartAPIServesTheDashboard(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	p := startAPI(t, r, server.APIConfig{API: api.Config{Tokens: []api.Token{
		{Name: "ui", Secret: "ui-secret-0123456789abcdef", Scopes: []api.Scope{api.ScopeOrdersRead}},
	}}})
	page := get(t, p.URL()+"/ui/")
	require.True(t, strings.HasPrefix(page.Header.Get("Content-Type"), "text/html"), page.Header.Get("Content-Type"))
	require.Contains(t, page.Header.Get("Content-Security-Policy"), "default-src 'none'")
	get(t, p.URL()+"/ui/js/app.js")
	for _, path := range []string{"/v1/stats", "/v1/workflows", "/v1/events", "/v1/orders"} {
		require.Equal(t, http.StatusUnauthorized, do(t, http.MethodGet, p.URL()+path, "").Code, path)
	}
}

// An open event stream does not hold up a shutdown: it is ended when the
// shutdown begins.
func TestShutdownEndsEventStreams(t *testing.T) {
	t.Parallel()
	d, stop := startDev(t, server.DevConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.APIURL()+"/v1/events", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() && lines.Text() != "event: hello" {
	}

	start := time.Now()
	stop()
	require.Less(t, time.Since(start), 5*time.Second, "the shutdown did not wait for the stream")
	for lines.Scan() {
		// The stream ends.
	}
}
