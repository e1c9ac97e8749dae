package api

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// Requests a web page could forge.
//
// A browser on this machine reaches the API on behalf of any page it shows.
// Without tokens nothing else stands in the way, so:
//
//   - A page may send a "simple" request across sites without asking the
//     server first: a form POST, or a fetch with a form or text/plain body.
//     Every request that changes something must therefore carry a JSON body
//     (which needs a CORS preflight this API never grants) or none, and the
//     browser's own marks of a cross-site request (Sec-Fetch-Site, Origin)
//     are refused outright.
//   - DNS rebinding points a name the page controls at 127.0.0.1, which
//     makes the API same-origin to the page. With Config.RestrictHosts the
//     Host header must name loopback, which a rebound name does not.

// isMutating reports whether a method changes something.
func isMutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// refuseBrowserForgery refuses a mutating request that a browser sent on
// behalf of another site (403), and one with a body or a Content-Type that
// is not JSON (415): a form or text body is what a page may send across
// sites unasked. A request with neither body nor Content-Type (curl -X
// POST) passes.
func refuseBrowserForgery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !isMutating(r.Method) {
			return next(c)
		}
		if crossSiteBrowser(r) {
			return crossSite()
		}
		ct := r.Header.Get(echo.HeaderContentType)
		if (r.ContentLength != 0 || ct != "") && !isJSONMediaType(ct) {
			return unsupportedMediaType(ct)
		}
		return next(c)
	}
}

// crossSiteBrowser reports whether a browser marked r as sent on behalf of
// a page of another site or origin: Sec-Fetch-Site says so, or Origin names
// another host:port than the request's Host.
func crossSiteBrowser(r *http.Request) bool {
	switch strings.ToLower(r.Header.Get("Sec-Fetch-Site")) {
	case "cross-site", "same-site":
		return true
	case "same-origin", "none":
		// A browser that sends Sec-Fetch-Site knows best: Origin's
		// comparison with Host is only a fallback (a proxy may change the
		// port the Host names).
		return false
	}
	origin := r.Header.Get("Origin")
	return origin != "" && !sameOrigin(origin, r.Host)
}

// sameOrigin reports whether an Origin header names the host:port in host
// (a Host header). Ports missing on either side are the default port of
// the origin's scheme; "null" and anything unparsable are not the same.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	def := "80"
	if u.Scheme == "https" {
		def = "443"
	}
	oh, op := splitHostPort(u.Host, def)
	hh, hp := splitHostPort(host, def)
	return strings.EqualFold(oh, hh) && op == hp
}

// splitHostPort splits a Host header's host (without brackets) and port,
// def when it has none.
func splitHostPort(hostport, def string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), def
}

// restrictHosts refuses, with Config.RestrictHosts, every request but
// /healthz whose Host is not loopback (DNS rebinding).
func (s *Server) restrictHosts(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.cfg.RestrictHosts || c.Path() == "/healthz" || loopbackHost(c.Request().Host) {
			return next(c)
		}
		return hostRefused()
	}
}

// loopbackHost reports whether a Host header names this machine: localhost,
// or a loopback address such as 127.0.0.1 or [::1], with or without a port.
func loopbackHost(hostport string) bool {
	host, _ := splitHostPort(hostport, "")
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
