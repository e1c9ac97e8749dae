package api

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Scope is a permission that a token grants.
type Scope string

// The scopes. ScopeAdmin grants every route.
const (
	// ScopeOrdersWrite allows POST /v1/orders and POST /v1/orders/{id}/cancel.
	ScopeOrdersWrite Scope = "orders:write"
	// ScopeOrdersRead allows GET /v1/orders, an order and its history.
	ScopeOrdersRead Scope = "orders:read"
	// ScopeAdmin allows everything, including /monitor/, /metrics and
	// GET /v1/audit.
	ScopeAdmin Scope = "admin"
)

// Scopes lists the known scopes.
var Scopes = []Scope{ScopeOrdersWrite, ScopeOrdersRead, ScopeAdmin}

// MinSecretLen is the shortest secret a token may have.
const MinSecretLen = 16

// Token is one API client's credential: a name for logs, the secret it
// sends as "Authorization: Bearer <secret>", and its scopes. Formatting a
// Token shows only its name.
type Token struct {
	Name   string
	Secret string
	Scopes []Scope
}

// String returns the token's name, never its secret.
func (t Token) String() string { return t.Name }

// GoString returns the token's name, never its secret.
func (t Token) GoString() string { return fmt.Sprintf("api.Token{Name: %q}", t.Name) }

var (
	tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	// secretPattern is RFC 6750's b64token: what a bearer header can carry.
	secretPattern = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)
)

// ParseTokens parses token entries "name secret scope1,scope2", one per line
// or separated by ";". Blank entries and lines starting with "#" are
// skipped. Errors name an entry by its name or its line, never by its
// secret.
func ParseTokens(text string) ([]Token, error) {
	var tokens []Token
	var errs []error
	for i, line := range strings.Split(text, "\n") {
		for _, entry := range strings.Split(line, ";") {
			entry = strings.TrimSpace(entry)
			if entry == "" || strings.HasPrefix(entry, "#") {
				continue
			}
			f := strings.Fields(entry)
			if len(f) != 3 {
				errs = append(errs, fmt.Errorf("token entry on line %d: want \"name secret scope1,scope2\", got %d fields", i+1, len(f)))
				continue
			}
			t := Token{Name: f[0], Secret: f[1]}
			for _, s := range strings.Split(f[2], ",") {
				if s = strings.TrimSpace(s); s != "" && !slices.Contains(t.Scopes, Scope(s)) {
					t.Scopes = append(t.Scopes, Scope(s))
				}
			}
			tokens = append(tokens, t)
		}
	}
	if err := errors.Join(append(errs, ValidateTokens(tokens))...); err != nil {
		return nil, err
	}
	return tokens, nil
}

// ValidateTokens checks every token: a name of [A-Za-z0-9._:-]{1,64}, a
// secret of at least MinSecretLen bearer characters, known scopes, and no
// name or secret used twice.
func ValidateTokens(tokens []Token) error {
	var errs []error
	names := map[string]bool{}
	secrets := map[string]string{}
	for i, t := range tokens {
		if !tokenNamePattern.MatchString(t.Name) {
			// Not echoed: a misplaced field could be a secret.
			errs = append(errs, fmt.Errorf("token #%d: the name must match [A-Za-z0-9._:-]{1,64}", i+1))
			continue
		}
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("token %q: "+format, append([]any{t.Name}, args...)...))
		}
		if names[t.Name] {
			fail("the name is used twice")
		}
		names[t.Name] = true
		switch {
		case len(t.Secret) < MinSecretLen:
			fail("the secret must be at least %d characters", MinSecretLen)
		case !secretPattern.MatchString(t.Secret):
			fail("the secret may hold only letters, digits and -._~+/ (and trailing =)")
		case secrets[t.Secret] != "":
			fail("the secret is the same as token %q's", secrets[t.Secret])
		default:
			secrets[t.Secret] = t.Name
		}
		if len(t.Scopes) == 0 {
			fail("no scope; want some of %s", scopeList())
		}
		for j, s := range t.Scopes {
			if !slices.Contains(Scopes, s) {
				// Not echoed either, for the same reason.
				fail("scope #%d is unknown; want some of %s", j+1, scopeList())
			}
		}
	}
	return errors.Join(errs...)
}

func scopeList() string {
	out := make([]string, len(Scopes))
	for i, s := range Scopes {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}
