package server_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/server"
)

// Request headers are limited to 64 KiB: a larger header is refused with
// 431 before any handler runs.
func TestListenHTTPRefusesLargeHeaders(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	svc, err := server.ListenHTTP("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	}), discard)
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, svc.Shutdown) })

	send := func(size int) int {
		req, err := http.NewRequest(http.MethodGet, svc.URL()+"/", nil)
		require.NoError(t, err)
		req.Header.Set("X-Padding", strings.Repeat("a", size))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, send(32<<10))
	require.EqualValues(t, 1, reached.Load())
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, send(80<<10))
	require.EqualValues(t, 1, reached.Load(), "the handler never saw the large request")
}
