package api_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
)

func TestParseTokens(t *testing.T) {
	t.Parallel()
	tokens, err := api.ParseTokens(`
# CI deploys orders
ci    ci-secret-0123456789    orders:write

ops   ops-secret-0123456789   admin
  # a comment after blanks
report report-secret-012345 orders:read,orders:write,orders:read
`)
	require.NoError(t, err)
	require.Equal(t, []api.Token{
		{Name: "ci", Secret: "ci-secret-0123456789", Scopes: []api.Scope{api.ScopeOrdersWrite}},
		{Name: "ops", Secret: "ops-secret-0123456789", Scopes: []api.Scope{api.ScopeAdmin}},
		{Name: "report", Secret: "report-secret-012345", Scopes: []api.Scope{api.ScopeOrdersRead, api.ScopeOrdersWrite}},
	}, tokens)

	// The flag and environment form: entries separated by ";".
	tokens, err = api.ParseTokens("ci ci-secret-0123456789 orders:write; ops ops-secret-0123456789 admin;")
	require.NoError(t, err)
	require.Len(t, tokens, 2)

	tokens, err = api.ParseTokens("\n# nothing\n;;")
	require.NoError(t, err)
	require.Empty(t, tokens)
}

// Every bad entry is refused with a message naming it by its name (or its
// position), never showing a secret.
func TestParseTokensRefuses(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-s3cret-s3cret"
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"ci " + secret + " orders:delete", []string{`token "ci"`, "scope #1 is unknown", "orders:write, orders:read, admin"}},
		{"ci " + secret + " orders:read,orders:delete", []string{`token "ci"`, "scope #2 is unknown"}},
		{"ci " + secret + " ,", []string{`token "ci"`, "no scope"}},
		{"ci short orders:read", []string{`token "ci"`, "at least 16 characters"}},
		{"ci " + secret + " admin; ci other-secret-0123456 admin", []string{`token "ci"`, "the name is used twice"}},
		{"ci " + secret + " admin; ops " + secret + " admin", []string{`token "ops"`, `same as token "ci"`}},
		{"ci s3cret;s3cret;s3cret admin", []string{"fields"}},
		{"ci " + secret + " admin extra", []string{"line 1", "got 4 fields"}},
		{"\n\n" + secret, []string{"line 3", "got 1 fields"}},
		{"ci " + secret + "\"x admin", []string{`token "ci"`, "may hold only"}},
		{"bad/name " + secret + " admin", []string{"token #1", "name must match"}},
		// Fields in the wrong order: the secret is in the scope's place.
		{"ci admin " + secret, []string{`token "ci"`, "scope #1 is unknown"}},
	} {
		t.Run(tc.text, func(t *testing.T) {
			t.Parallel()
			_, err := api.ParseTokens(tc.text)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestTokenFormattingHidesTheSecret(t *testing.T) {
	t.Parallel()
	tok := api.Token{Name: "ci", Secret: "s3cret-s3cret-s3cret", Scopes: []api.Scope{api.ScopeAdmin}}
	cfg := api.Config{Tokens: []api.Token{tok}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{tok, &tok, cfg, &cfg} {
			out := fmt.Sprintf(format, v)
			require.NotContains(t, out, "s3cret", format)
		}
	}
	require.Contains(t, fmt.Sprint(tok), "ci")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, api.Config{}.Validate())
	require.NoError(t, api.Config{Tokens: testTokens, RateLimit: -1, MaxBacklog: -1}.Validate())
	err := api.Config{Tokens: []api.Token{{Name: "x", Secret: "short", Scopes: []api.Scope{api.ScopeAdmin}}}}.Validate()
	require.ErrorContains(t, err, "Tokens")
	require.ErrorContains(t, err, `token "x"`)
	require.ErrorContains(t, api.Config{RateBurst: -1}.Validate(), "RateBurst")
	require.ErrorContains(t, api.Config{BacklogInterval: -1}.Validate(), "BacklogInterval")
}
