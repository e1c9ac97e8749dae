package web_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/web"
)

func serveUI(method, path string, headers ...string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	web.NewUI().ServeHTTP(rec, req)
	return rec
}

func TestUIServesItsFiles(t *testing.T) {
	t.Parallel()
	for _, f := range []struct{ path, contentType string }{
		{"/ui/", "text/html"},
		{"/ui/index.html", "text/html"},
		{"/ui/app.css", "text/css"},
		{"/ui/js/app.js", "text/javascript"},
		{"/ui/js/order.js", "text/javascript"},
	} {
		rec := serveUI(http.MethodGet, f.path)
		require.Equal(t, http.StatusOK, rec.Code, f.path)
		require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), f.contentType), "%s: %s", f.path, rec.Header().Get("Content-Type"))
		csp := rec.Header().Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'")
		require.Contains(t, csp, "script-src 'self'")
		require.Contains(t, csp, "frame-ancestors 'none'")
		require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
		require.NotEmpty(t, rec.Header().Get("ETag"))
		require.Empty(t, rec.Header().Values("Set-Cookie"))
	}

	rec := serveUI(http.MethodGet, "/ui")
	require.Equal(t, http.StatusMovedPermanently, rec.Code)
	require.Equal(t, "/ui/", rec.Header().Get("Location"))
	require.Equal(t, http.StatusNotFound, serveUI(http.MethodGet, "/ui/nope.js").Code)
	require.Equal(t, http.StatusNotFound, serveUI(http.MethodGet, "/elsewhere").Code)

	etag := serveUI(http.MethodGet, "/ui/app.css").Header().Get("ETag")
	require.Equal(t, http.StatusNotModified, serveUI(http.MethodGet, "/ui/app.css", "If-None-Match", etag).Code)
}

// The pages load nothing from elsewhere and carry no inline script or
// style, which their Content-Security-Policy would refuse.
func TestUIIsSelfContained(t *testing.T) {
	t.Parallel()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
	for _, path := range []string{"/ui/", "/ui/app.css", "/ui/js/app.js", "/ui/js/api.js", "/ui/js/dom.js", "/ui/js/list.js",
		"/ui/js/order.js", "/ui/js/providers.js", "/ui/js/stream.js"} {
		body := serveUI(http.MethodGet, path).Body.String()
		require.NotEmpty(t, body, path)
		require.False(t, external.MatchString(body), "%s loads something from elsewhere", path)
		require.NotContains(t, body, "innerHTML", "%s: the pages build the DOM from data, never from HTML strings", path)
		require.NotContains(t, body, "document.cookie", path)
	}
	index := serveUI(http.MethodGet, "/ui/").Body.String()
	require.NotRegexp(t, `<script(?:\s[^>]*)?>[^<]`, index, "no inline script")
	require.NotContains(t, index, "style=", "no inline style")
	require.NotContains(t, index, "<style", "no inline style")
}
