package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// publicRoutes answer without a token: health, the API's description and
// the dashboard's static pages, which hold no data (the pages ask the user
// for a token to call the API with).
var publicRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/openapi.yaml": true, "/openapi.json": true, UIPath: true, UIPath + "/*": true}

// authToken is a configured token as the server keeps it: the SHA-256 of
// its secret, never the secret.
type authToken struct {
	name   string
	hash   [sha256.Size]byte
	scopes []Scope
}

// allows reports whether the token grants scope.
func (t *authToken) allows(scope Scope) bool {
	return slices.Contains(t.scopes, ScopeAdmin) || slices.Contains(t.scopes, scope)
}

// authenticator finds the token of a presented secret.
type authenticator struct{ tokens []authToken }

// newAuthenticator returns nil when there are no tokens: authentication is
// off.
func newAuthenticator(tokens []Token) *authenticator {
	if len(tokens) == 0 {
		return nil
	}
	a := &authenticator{}
	for _, t := range tokens {
		a.tokens = append(a.tokens, authToken{name: t.Name, hash: sha256.Sum256([]byte(t.Secret)), scopes: slices.Clone(t.Scopes)})
	}
	return a
}

// lookup returns the token whose secret is secret, or nil. It compares the
// SHA-256 of secret with every token's in constant time and never stops
// early, so the time taken says neither whether nor which token matched.
func (a *authenticator) lookup(secret string) *authToken {
	h := sha256.Sum256([]byte(secret))
	match := -1
	for i := range a.tokens {
		eq := subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil
	}
	return &a.tokens[match]
}

// bearerSecret returns the credentials of an "Authorization: Bearer <secret>"
// header (the scheme is case-insensitive).
func bearerSecret(header string) (string, bool) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

// bearerChallenge builds a WWW-Authenticate value (RFC 6750).
func bearerChallenge(reason string, scope Scope) string {
	c := `Bearer realm="orderflow"`
	if reason != "" {
		c += `, error="` + reason + `"`
	}
	if scope != "" {
		c += `, scope="` + string(scope) + `"`
	}
	return c
}

type tokenKey struct{}

// TokenName returns the name of the token that authenticated the request
// of ctx, or "" when authentication is off.
func TokenName(ctx context.Context) string {
	t, _ := ctx.Value(tokenKey{}).(*authToken)
	if t == nil {
		return ""
	}
	return t.name
}

func tokenOf(c echo.Context) *authToken {
	t, _ := c.Request().Context().Value(tokenKey{}).(*authToken)
	return t
}

// authenticate requires a valid bearer token on every route but the public
// ones, when tokens are configured, and puts the token into the request's
// context. Neither answers nor logs show what the client sent.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.auth == nil || publicRoutes[c.Path()] {
			return next(c)
		}
		secret, ok := bearerSecret(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			return unauthorized("", "this API needs an Authorization: Bearer <token> header")
		}
		t := s.auth.lookup(secret)
		if t == nil {
			s.log.Warn("refused an unknown bearer token", "remote", c.Request().RemoteAddr, "method", c.Request().Method, "path", c.Path())
			return unauthorized("invalid_token", "the bearer token is not valid")
		}
		req := c.Request()
		c.SetRequest(req.WithContext(context.WithValue(req.Context(), tokenKey{}, t)))
		return next(c)
	}
}

// authorize requires the request's token to grant scope; without
// authentication every request passes.
func (s *Server) authorize(scope Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if t := tokenOf(c); s.auth != nil && (t == nil || !t.allows(scope)) {
				return forbidden(scope)
			}
			return next(c)
		}
	}
}
