package cli

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// result is what a finished command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the orderflow command to its end.
func run(args ...string) result {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// requireUsageError requires exit code 2 and every one of wants in stderr.
func requireUsageError(t *testing.T, r result, wants ...string) {
	t.Helper()
	require.Equal(t, ExitUsage, r.code, "stderr: %s", r.stderr)
	for _, w := range wants {
		require.Contains(t, r.stderr, w)
	}
}

func TestMainUsage(t *testing.T) {
	t.Parallel()
	r := run()
	requireUsageError(t, r, "usage: orderflow <command>")
	for _, c := range commands() {
		require.Contains(t, r.stderr, "  "+c.name+" ")
	}
	for _, arg := range []string{"help", "-h", "--help"} {
		r := run(arg)
		require.Equal(t, ExitOK, r.code, arg)
		require.Contains(t, r.stderr, "usage: orderflow <command>", arg)
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	requireUsageError(t, run("serve"), `unknown command "serve"`, "usage: orderflow <command>")
	requireUsageError(t, run("--redis-url", "redis://x:1"), "unknown command")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := run("version")
	require.Equal(t, ExitOK, r.code)
	require.Equal(t, "orderflow "+Version+"\n", r.stdout)
	requireUsageError(t, run("version", "extra"), `unexpected argument "extra"`)
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for flag, env := range map[string]string{
		"redis-url":             "ORDERFLOW_REDIS_URL",
		"listen":                "ORDERFLOW_LISTEN",
		"lease":                 "ORDERFLOW_LEASE",
		"payment-failure-rate":  "ORDERFLOW_PAYMENT_FAILURE_RATE",
		"sim-initial-stock":     "ORDERFLOW_SIM_INITIAL_STOCK",
		"task-check-interval":   "ORDERFLOW_TASK_CHECK_INTERVAL",
		"shipping-decline-skus": "ORDERFLOW_SHIPPING_DECLINE_SKUS",
	} {
		require.Equal(t, env, EnvName(flag))
	}
}

// providerArgs are valid provider URLs; nothing listens on them.
var providerArgs = []string{
	"--payment-url", "http://127.0.0.1:1/payment",
	"--inventory-url", "http://127.0.0.1:1/inventory",
	"--shipping-url", "http://127.0.0.1:1/shipping",
}

func TestWorkerRequiresRedisURL(t *testing.T) {
	t.Parallel()
	requireUsageError(t, run(slices.Concat([]string{"worker"}, providerArgs)...), "--redis-url", "ORDERFLOW_REDIS_URL")
	for _, cmd := range []string{"api", "sim"} {
		requireUsageError(t, run(cmd), "--redis-url")
	}
}

// A worker started with no settings at all names the Redis URL it needs
// along with the provider URLs, not only the latter.
func TestWorkerWithoutSettingsNamesEverythingMissing(t *testing.T) {
	t.Parallel()
	requireUsageError(t, run("worker"), "--redis-url", "--payment-url", "--inventory-url", "--shipping-url")
}

func TestWorkerRequiresProviderURLs(t *testing.T) {
	t.Parallel()
	for i := 0; i < len(providerArgs); i += 2 {
		flag := providerArgs[i]
		args := slices.Concat([]string{"worker", "--redis-url", "redis://x:1"}, providerArgs[:i], providerArgs[i+2:])
		requireUsageError(t, run(args...), flag)

		// A URL that is not an absolute http(s) URL.
		requireUsageError(t, run(slices.Concat(args, []string{flag, "ftp://127.0.0.1/x"})...), "ftp://127.0.0.1/x")
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	worker := slices.Concat([]string{"worker", "--redis-url", "redis://x:1"}, providerArgs)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{slices.Concat(worker, []string{"--lease", "nope"}), "lease"},
		{slices.Concat(worker, []string{"--lease", "50ms"}), "--lease must be at least 100ms"},
		{slices.Concat(worker, []string{"--concurrency", "0"}), "--concurrency"},
		{slices.Concat(worker, []string{"--concurrency", "many"}), "concurrency"},
		{slices.Concat(worker, []string{"--retention", "1s"}), "--retention"},
		{slices.Concat(worker, []string{"--reaper-interval", "0s"}), "--reaper-interval"},
		{slices.Concat(worker, []string{"--log-level", "loud"}), "--log-level"},
		{slices.Concat(worker, []string{"--log-format", "xml"}), "--log-format"},
		{slices.Concat(worker, []string{"--no-such-flag"}), "no-such-flag"},
		{slices.Concat(worker, []string{"positional"}), `unexpected argument "positional"`},
		{[]string{"dev", "--lease", "nope"}, "lease"},
		{[]string{"dev", "--payment-failure-rate", "2"}, "ailure"},
		{[]string{"dev", "--sim-initial-stock", "x"}, "sim-initial-stock"},
		{[]string{"api", "--redis-url", "redis://x:1", "--retention", "1s"}, "--retention"},
		{[]string{"api", "--redis-url", "redis://x:1", "--shutdown-timeout", "0s"}, "--shutdown-timeout"},
		{[]string{"api", "--redis-url", "redis://x:1", "--log-format", "xml"}, "--log-format"},
		{[]string{"sim", "--redis-url", "redis://x:1", "--shipping-timeout-rate", "-1"}, "imeout"},
		{[]string{"sim", "--redis-url", "redis://x:1", "--payment-in-progress-rate", "1.5"}, "InProgressRate"},
		{[]string{"sim", "--redis-url", "redis://x:1", "--inventory-stray-rate", "-0.1"}, "StrayRate"},
		{[]string{"sim", "--redis-url", "redis://x:1", "--payment-in-progress-hold", "-1s"}, "InProgressHold"},
		{[]string{"sim", "--redis-url", "redis://x:1", "--payment-in-progress-hold", "soon"}, "in-progress-hold"},
		{[]string{"dev", "--shipping-broken", "ignore-keys,lose-parcels"}, `unknown mode "lose-parcels"`},
		{[]string{"version", "--verbose"}, "verbose"},
	} {
		requireUsageError(t, run(tc.args...), tc.want)
	}
}

func TestInvalidRedisURL(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{"api"}, {"sim"}, slices.Concat([]string{"worker"}, providerArgs)} {
		requireInvalidRedisURL(t, cmd)
	}
}

// dev answers a bad --redis-url as every other command does: a usage error
// (2), not a runtime failure (1).
func TestDevInvalidRedisURL(t *testing.T) {
	t.Parallel()
	requireInvalidRedisURL(t, []string{"dev"})
}

// requireInvalidRedisURL requires cmd to refuse bad Redis URLs with exit code
// 2, without printing a password.
func requireInvalidRedisURL(t *testing.T, cmd []string) {
	t.Helper()
	for _, url := range []string{"http://127.0.0.1:6379", "127.0.0.1:6379", "redis://127.0.0.1:notaport", "http://user:s3cret@127.0.0.1:6379"} {
		r := run(slices.Concat(cmd, []string{"--redis-url", url})...)
		requireUsageError(t, r, "redis URL")
		require.NotContains(t, r.stderr, "s3cret")
	}
}

// flagLine is one flag in a command's --help: "  --name  ENV  usage".
var flagLine = regexp.MustCompile(`(?m)^  --(\S+)\s+(\S+)\s+(.*)$`)

// helpFlags runs "<command> --help" and returns its flags with the
// environment variable each lists, and the usage of each.
func helpFlags(t *testing.T, command string) (env, usage map[string]string) {
	t.Helper()
	r := run(command, "--help")
	require.Equal(t, ExitOK, r.code, "stderr: %s", r.stderr)
	require.Contains(t, r.stderr, "usage: orderflow "+command+" [flags]")
	env, usage = map[string]string{}, map[string]string{}
	for _, m := range flagLine.FindAllStringSubmatch(r.stderr, -1) {
		env[m[1]], usage[m[1]] = m[2], m[3]
	}
	return env, usage
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		env, usage := helpFlags(t, c.name)
		if c.name != "version" {
			require.NotEmpty(t, env, c.name)
		}
		for flag, e := range env {
			require.Equal(t, EnvName(flag), e, "%s --%s", c.name, flag)
			require.NotEmpty(t, strings.TrimSpace(usage[flag]), "%s --%s has a usage", c.name, flag)
		}
		r := run(c.name, "-h")
		require.Equal(t, ExitOK, r.code, c.name)
	}
}

// The configuration table of API.md: each flag exists, with its environment
// variable, on every command that takes it.
func TestConfigurationTable(t *testing.T) {
	t.Parallel()
	for _, row := range []struct {
		flag, env string
		commands  []string
	}{
		{"redis-url", "ORDERFLOW_REDIS_URL", []string{"dev", "api", "worker", "sim"}},
		{"listen", "ORDERFLOW_LISTEN", []string{"api", "dev"}},
		{"payment-url", "ORDERFLOW_PAYMENT_URL", []string{"worker", "dev"}},
		{"inventory-url", "ORDERFLOW_INVENTORY_URL", []string{"worker", "dev"}},
		{"shipping-url", "ORDERFLOW_SHIPPING_URL", []string{"worker", "dev"}},
		{"queues", "ORDERFLOW_QUEUES", []string{"worker", "dev"}},
		{"limit", "ORDERFLOW_LIMIT", []string{"worker", "dev"}},
		{"breaker-error-rate", "ORDERFLOW_BREAKER_ERROR_RATE", []string{"worker", "dev"}},
		{"breaker-window", "ORDERFLOW_BREAKER_WINDOW", []string{"worker", "dev"}},
		{"payment-rps", "ORDERFLOW_PAYMENT_RPS", []string{"worker", "dev"}},
		{"payment-burst", "ORDERFLOW_PAYMENT_BURST", []string{"worker", "dev"}},
		{"inventory-rps", "ORDERFLOW_INVENTORY_RPS", []string{"worker", "dev"}},
		{"shipping-burst", "ORDERFLOW_SHIPPING_BURST", []string{"worker", "dev"}},
		{"risk-rps", "ORDERFLOW_RISK_RPS", []string{"worker", "dev"}},
	} {
		for _, cmd := range row.commands {
			env, usage := helpFlags(t, cmd)
			require.Equal(t, row.env, env[row.flag], "%s --%s", cmd, row.flag)
			if row.flag == "listen" {
				require.Contains(t, usage[row.flag], "(default 127.0.0.1:8080)", cmd)
			}
		}
	}
}

// The tests below set environment variables, so they cannot run in
// parallel.

func TestEnvLease(t *testing.T) {
	t.Setenv("ORDERFLOW_LEASE", "nope")
	worker := slices.Concat([]string{"worker", "--redis-url", "redis://x:1"}, providerArgs)
	requireUsageError(t, run(worker...), "ORDERFLOW_LEASE", `"nope"`)
	requireUsageError(t, run("dev"), "ORDERFLOW_LEASE")

	// A flag on the command line wins over its variable.
	r := run(slices.Concat([]string{"worker", "--lease", "1s"}, providerArgs)...)
	requireUsageError(t, r, "--redis-url")
	require.NotContains(t, r.stderr, "ORDERFLOW_LEASE")
}

func TestEnvRedisURL(t *testing.T) {
	t.Setenv("ORDERFLOW_REDIS_URL", "http://127.0.0.1:6379")
	requireUsageError(t, run("api"), "redis URL", "http://127.0.0.1:6379")
	requireUsageError(t, run("sim"), "redis URL")
}

func TestEnvProviderURLs(t *testing.T) {
	for i := 0; i < len(providerArgs); i += 2 {
		t.Setenv(EnvName(strings.TrimPrefix(providerArgs[i], "--")), providerArgs[i+1])
	}
	// The provider URLs come from the environment: only Redis is missing.
	requireUsageError(t, run("worker"), "--redis-url")
}

func TestListFlag(t *testing.T) {
	t.Parallel()
	var l listFlag
	require.NoError(t, l.Set(" cust-1, cust-2,,cust-3 "))
	require.Equal(t, listFlag{"cust-1", "cust-2", "cust-3"}, l)
	require.Equal(t, "cust-1,cust-2,cust-3", l.String())
	require.NoError(t, l.Set(""))
	require.Empty(t, l, "a new value replaces the list")
}

// --redis-cluster and --redis-sentinel replace --redis-url, with their
// environment variables; the three exclude each other, and a bad seed list
// names its flag.
func TestRedisTopologyFlags(t *testing.T) {
	t.Parallel()
	requireUsageError(t, run("api", "--redis-url", "redis://127.0.0.1:1", "--redis-cluster", "127.0.0.1:2"),
		"--redis-url, --redis-cluster and --redis-sentinel", "exclude each other")
	requireUsageError(t, run("sim", "--redis-cluster", "127.0.0.1"), "--redis-cluster", "not host:port")
	requireUsageError(t, run("audit", "--redis-sentinel", "127.0.0.1:26379"), "--redis-sentinel", "<master-name>@")
	requireUsageError(t, run("worker"), "--redis-cluster", "ORDERFLOW_REDIS_SENTINEL")
	for _, cmd := range []string{"api", "worker", "sim", "dev", "audit", "versions"} {
		flags, envs := flagsOf(t, cmd)
		for _, f := range []string{"redis-url", "redis-cluster", "redis-sentinel", "redis-password", "redis-username",
			"redis-sentinel-password", "redis-tls", "redis-ca-file", "redis-cert-file", "redis-key-file"} {
			require.True(t, flags[f], "orderflow %s --%s", cmd, f)
			require.True(t, envs[EnvName(f)], "orderflow %s reads %s", cmd, EnvName(f))
		}
		if cmd != "sim" {
			require.True(t, flags["index-shards"], "orderflow %s --index-shards", cmd)
		}
	}
}
