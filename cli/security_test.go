package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// The flags of the security settings, with their variables, on every
// command that takes them.
func TestSecurityFlags(t *testing.T) {
	t.Parallel()
	for _, row := range []struct {
		flag, def string
		commands  []string
	}{
		{"api-tokens-file", "", []string{"api", "dev"}},
		{"api-tokens", "", []string{"api", "dev"}},
		{"insecure-listen", "(default false)", []string{"api", "dev"}},
		{"rate-limit", "(default 100)", []string{"api", "dev"}},
		{"rate-burst", "(default 200)", []string{"api", "dev"}},
		{"max-backlog", "(default 50000)", []string{"api", "dev"}},
		{"redis-ca-file", "", []string{"api", "worker", "sim", "audit"}},
		{"redis-cert-file", "", []string{"api", "worker", "sim", "audit"}},
		{"redis-key-file", "", []string{"api", "worker", "sim", "audit"}},
	} {
		for _, cmd := range row.commands {
			env, usage := helpFlags(t, cmd)
			require.Equal(t, EnvName(row.flag), env[row.flag], "%s --%s", cmd, row.flag)
			require.Contains(t, usage[row.flag], row.def, "%s --%s", cmd, row.flag)
		}
	}
}

// writeFile writes content to a new file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

const (
	opsSecret    = "ops-s3cret-0123456789"
	reportSecret = "report-s3cret-0123456789"
)

var tokensFile = "# the API's clients\nops " + opsSecret + " admin\n\nreport " + reportSecret + " orders:read\n"

func TestAPIRefusesToListenOpenlyWithoutTokens(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"api", "dev"} {
		for _, listen := range []string{"0.0.0.0:8080", ":8080", "10.1.2.3:8080"} {
			r := run(cmd, "--redis-url", "redis://127.0.0.1:1", "--listen", listen)
			requireUsageError(t, r, "--listen "+listen+" is not a loopback address", "--api-tokens-file", "ORDERFLOW_API_TOKENS", "--insecure-listen")
		}
	}
}

// --insecure-listen, or tokens, allow any address.
func TestAPIListensOpenly(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t, redistest.BackendMiniredis)
	listening := regexp.MustCompile(`"msg":"api listening".*"url":"(http://[^"]+)"`)
	for _, extra := range [][]string{{"--insecure-listen"}, {"--api-tokens-file", writeFile(t, "tokens", tokensFile)}} {
		r := start(t, slices.Concat([]string{"api", "--redis-url", rd.URL, "--listen", "0.0.0.0:0"}, extra)...)
		r.waitFor(r.stderr, listening)
		r.stop()
	}
}

// With tokens the API needs one, and neither the output nor the logs ever
// show a secret.
func TestAPIWithTokens(t *testing.T) {
	t.Parallel()
	rd := redistest.New(t, redistest.BackendMiniredis)
	r := start(t, "api", "--redis-url", rd.URL, "--listen", "127.0.0.1:0", "--log-level", "debug",
		"--api-tokens-file", writeFile(t, "tokens", tokensFile))
	base := r.waitFor(r.stderr, apiListens)
	httpGet(t, base+"/healthz", http.StatusOK)
	httpGet(t, base+"/v1/orders", http.StatusUnauthorized)
	for secret, want := range map[string]int{reportSecret: http.StatusOK, opsSecret: http.StatusOK, "wrong-s3cret-0123456789": http.StatusUnauthorized} {
		req, err := http.NewRequest(http.MethodGet, base+"/v1/orders", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, want, res.StatusCode)
	}
	r.stop()
	require.NotContains(t, r.stderr.String()+r.stdout.String(), "s3cret")
}

// ORDERFLOW_API_TOKENS holds ";"-separated entries.
func TestEnvAPITokens(t *testing.T) {
	t.Setenv("ORDERFLOW_API_TOKENS", "ops "+opsSecret+" admin; report short orders:read")
	r := run("api", "--redis-url", "redis://127.0.0.1:1")
	requireUsageError(t, r, "--api-tokens", `token "report"`, "at least 16 characters")
	require.NotContains(t, r.stderr, "s3cret")
	require.NotContains(t, r.stderr, "short")
}

// Bad tokens and limits exit 2 naming the flag and the token, never a
// secret.
func TestBadSecurityFlags(t *testing.T) {
	t.Parallel()
	api := []string{"api", "--redis-url", "redis://127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--api-tokens-file", writeFile(t, "t", "ops "+opsSecret+" orders:everything\n")}, []string{"--api-tokens-file", `token "ops"`, "unknown"}},
		{[]string{"--api-tokens-file", writeFile(t, "t", "ops "+opsSecret+" admin\nops other-s3cret-0123456 admin\n")}, []string{`token "ops"`, "twice"}},
		{[]string{"--api-tokens-file", writeFile(t, "t", "a "+opsSecret+" admin\nb "+opsSecret+" admin\n")}, []string{`token "b"`, `same as token "a"`}},
		{[]string{"--api-tokens-file", writeFile(t, "t", "# nothing\n")}, []string{"--api-tokens-file", "no token"}},
		{[]string{"--api-tokens-file", filepath.Join(t.TempDir(), "missing")}, []string{"--api-tokens-file", "no such file"}},
		{[]string{"--api-tokens", "ops " + opsSecret}, []string{"--api-tokens", "fields"}},
		{[]string{"--api-tokens", "ops " + opsSecret + " admin", "--api-tokens-file", writeFile(t, "t", tokensFile)}, []string{"exclude each other"}},
		{[]string{"--rate-limit", "-1"}, []string{"--rate-limit"}},
		{[]string{"--rate-limit", "many"}, []string{"rate-limit"}},
		{[]string{"--rate-burst", "0"}, []string{"--rate-burst"}},
		{[]string{"--max-backlog", "-1"}, []string{"--max-backlog"}},
		{[]string{"--insecure-listen=maybe"}, []string{"insecure-listen"}},
	} {
		for _, cmd := range [][]string{api, {"dev"}} {
			r := run(slices.Concat(cmd, tc.args)...)
			requireUsageError(t, r, tc.want...)
			require.NotContains(t, r.stderr, "s3cret")
		}
	}
}

// The Redis TLS flags reach the connection: bad ones exit 2 naming the
// flag, on every command that opens Redis.
func TestBadRedisTLSFlags(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := writeFile(t, "not.pem", "hello")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--redis-url", "redis://127.0.0.1:1", "--redis-ca-file", notPEM}, "--redis-ca-file: needs a rediss:// URL"},
		{[]string{"--redis-url", "rediss://127.0.0.1:1", "--redis-ca-file", missing}, "--redis-ca-file"},
		{[]string{"--redis-url", "rediss://127.0.0.1:1", "--redis-ca-file", notPEM}, "no PEM certificate"},
		{[]string{"--redis-url", "rediss://127.0.0.1:1", "--redis-key-file", notPEM}, "--redis-cert-file"},
		{[]string{"--redis-url", "rediss://127.0.0.1:1", "--redis-cert-file", notPEM}, "--redis-key-file"},
		{[]string{"--redis-url", "rediss://127.0.0.1:1", "--redis-cert-file", missing, "--redis-key-file", notPEM}, "--redis-cert-file"},
	} {
		for _, cmd := range [][]string{{"api"}, {"sim"}, {"audit"}, slices.Concat([]string{"worker"}, providerArgs)} {
			requireUsageError(t, run(slices.Concat(cmd, tc.args)...), tc.want)
		}
	}
}

// A Redis that refuses the password stops the command at once, with a
// message that names the problem and not the password.
func TestRedisRefusesThePassword(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, redistest.Options{Password: "right-pw-0123"})
	url := "redis://:wrong-s3cret@" + s.Addr()
	for _, cmd := range [][]string{{"api"}, {"sim"}, {"audit"}, slices.Concat([]string{"worker"}, providerArgs)} {
		r := run(slices.Concat(cmd, []string{"--redis-url", url})...)
		require.Equal(t, ExitError, r.code, "%s: %s", cmd[0], r.stderr)
		require.Contains(t, r.stderr, "refused the credentials")
		require.Contains(t, r.stderr, "WRONGPASS")
		require.NotContains(t, r.stderr, "s3cret")
	}
}
