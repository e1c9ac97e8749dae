package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/server"
)

// stopTimeout bounds how long a process may take to shut down.
const stopTimeout = 20 * time.Second

// discard is a logger that drops everything.
var discard = slog.New(slog.DiscardHandler)

// response is an answer read whole.
type response struct {
	Code   int
	Header http.Header
	Body   string
}

// do sends a request and reads the answer.
func do(t *testing.T, method, url, body string) *response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &response{Code: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// get sends a GET and requires 200.
func get(t *testing.T, url string) *response {
	t.Helper()
	r := do(t, http.MethodGet, url, "")
	require.Equal(t, http.StatusOK, r.Code, "GET %s: %s", url, r.Body)
	return r
}

// shutdown calls f with a bounded context and requires success.
func shutdown(t *testing.T, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	require.NoError(t, f(ctx))
}

// openRedis opens a RedisConn to r, closed at the end of the test.
func openRedis(t *testing.T, r *redistest.Instance) *server.RedisConn {
	t.Helper()
	conn, err := server.OpenRedis(r.URL, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
