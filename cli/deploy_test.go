package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The deployment files are checked here, since this machine runs neither
// Docker nor Kubernetes: every file parses; the compose files and the
// Kubernetes manifests have the services, kinds, probes and ports a
// deployment needs; and every subcommand, flag and environment variable
// they give orderflow exists in the binary (its --help).

// repoRoot is the repository's root, above this package.
const repoRoot = ".."

// flagsOf returns the flags of a subcommand and their environment
// variables, from its --help.
func flagsOf(t *testing.T, cmd string) (flags, envs map[string]bool) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{cmd, "--help"}, &out, &errOut)
	require.Equal(t, ExitOK, code, "orderflow %s --help: %s", cmd, errOut.String())
	flags, envs = map[string]bool{}, map[string]bool{}
	re := regexp.MustCompile(`(?m)^\s+--([a-z0-9-]+)\s+(ORDERFLOW_[A-Z0-9_]+)`)
	for _, m := range re.FindAllStringSubmatch(errOut.String(), -1) {
		flags[m[1]], envs[m[2]] = true, true
	}
	require.NotEmpty(t, flags, "orderflow %s --help lists no flag", cmd)
	return flags, envs
}

// commandChecker checks orderflow command lines and environments against
// the binary's flags.
type commandChecker struct {
	t     *testing.T
	flags map[string]map[string]bool
	envs  map[string]map[string]bool
}

func newCommandChecker(t *testing.T) *commandChecker {
	c := &commandChecker{t: t, flags: map[string]map[string]bool{}, envs: map[string]map[string]bool{}}
	for _, cmd := range commands() {
		if cmd.name == "version" {
			continue
		}
		c.flags[cmd.name], c.envs[cmd.name] = flagsOf(t, cmd.name)
	}
	return c
}

// args checks a command line (subcommand first) and returns the
// subcommand and the value of each flag it sets.
func (c *commandChecker) args(where string, args []string) (string, map[string]string) {
	c.t.Helper()
	require.NotEmpty(c.t, args, "%s: no command", where)
	cmd := args[0]
	flags, ok := c.flags[cmd]
	require.True(c.t, ok, "%s: orderflow has no subcommand %q", where, cmd)
	values := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		require.True(c.t, strings.HasPrefix(a, "--"), "%s: %q is not a flag", where, a)
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		require.True(c.t, flags[name], "%s: orderflow %s has no flag --%s", where, cmd, name)
		if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			val = args[i+1]
			i++
		}
		values[name] = val
	}
	return cmd, values
}

// env checks that an environment variable is one of cmd's flags.
func (c *commandChecker) env(where, cmd, name string) {
	c.t.Helper()
	require.True(c.t, c.envs[cmd][name], "%s: orderflow %s reads no %s", where, cmd, name)
}

// readYAMLDocs reads every document of a YAML file.
func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []map[string]any
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(doc), &m), "parsing %s", path)
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// at walks a parsed YAML value by map keys and list indexes.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = fmt.Sprint(x)
	}
	return out
}

func TestDeployCompose(t *testing.T) {
	t.Parallel()
	c := newCommandChecker(t)
	base := readYAMLDocs(t, filepath.Join(repoRoot, "docker-compose.yml"))[0]
	services, _ := base["services"].(map[string]any)
	for _, name := range []string{"redis", "api", "worker", "sim", "prometheus", "grafana"} {
		require.Contains(t, services, name)
	}
	redis := services["redis"]
	require.Subset(t, strs(at(redis, "command")), []string{"--appendonly", "yes"}, "Redis keeps an AOF")
	require.NotNil(t, at(redis, "healthcheck", "test"), "Redis has a health check")
	require.EqualValues(t, 2, at(services, "worker", "deploy", "replicas"))
	require.ElementsMatch(t, []string{"prometheus", "grafana"}, strs(at(services, "prometheus", "profiles")))
	require.Equal(t, []string{"grafana"}, strs(at(services, "grafana", "profiles")))
	// The monitoring files: written here, or by the dashboards' author.
	mounts := append(strs(at(services, "prometheus", "volumes")), strs(at(services, "grafana", "volumes"))...)
	for _, want := range []string{"./deploy/prometheus/prometheus.yml", "./deploy/prometheus/alerts.yml", "./deploy/grafana/orderflow.json", "./deploy/grafana/provisioning"} {
		require.True(t, slices.ContainsFunc(mounts, func(m string) bool { return strings.HasPrefix(m, want+":") }), "%s is mounted", want)
	}
	for _, f := range []string{"deploy/prometheus/prometheus.yml", "deploy/grafana/provisioning/datasources/prometheus.yml", "deploy/grafana/provisioning/dashboards/orderflow.yml"} {
		readYAMLDocs(t, filepath.Join(repoRoot, f))
	}
	prom := readYAMLDocs(t, filepath.Join(repoRoot, "deploy/prometheus/prometheus.yml"))[0]
	require.Equal(t, []string{"/etc/prometheus/alerts.yml"}, strs(prom["rule_files"]))

	checkService := func(file, name string, svc any, ports map[string]string) {
		if at(svc, "build") == nil && at(svc, "command") == nil {
			return // an override that only adds settings
		}
		where := file + ": " + name
		cmd := ""
		if args := strs(at(svc, "command")); len(args) > 0 {
			var values map[string]string
			cmd, values = c.args(where, args)
			for flag, port := range ports {
				if v, ok := values[flag]; ok {
					require.True(t, strings.HasSuffix(v, ":"+port), "%s: --%s %s serves on %s", where, flag, v, port)
				}
			}
		}
		env, _ := at(svc, "environment").(map[string]any)
		for k := range env {
			c.env(where, cmd, k)
		}
	}
	ports := map[string]string{"listen": "8080", "sim-listen": "8081", "metrics-listen": "9090"}
	for _, name := range []string{"api", "worker", "sim"} {
		require.Equal(t, ".", at(services, name, "build"), "%s runs the image of the Dockerfile", name)
		checkService("docker-compose.yml", name, services[name], ports)
	}
	require.Equal(t, []string{"8080:8080"}, strs(at(services, "api", "ports")))

	cluster := readYAMLDocs(t, filepath.Join(repoRoot, "docker-compose.cluster.yml"))[0]
	over, _ := cluster["services"].(map[string]any)
	nodes := 0
	for name, svc := range over {
		if strings.HasPrefix(name, "redis-node-") {
			nodes++
			require.Subset(t, strs(at(svc, "command")), []string{"--cluster-enabled", "yes", "--appendonly"}, name)
		}
	}
	require.Equal(t, 3, nodes, "three masters")
	require.Contains(t, strings.Join(strs(at(over, "redis-cluster-init", "command")), " "), "--cluster create")
	require.Equal(t, []string{"single"}, strs(at(over, "redis", "profiles")), "the single Redis stays off")
	for _, name := range []string{"api", "worker", "sim"} {
		env, _ := at(over, name, "environment").(map[string]any)
		require.NotEmpty(t, env["ORDERFLOW_REDIS_CLUSTER"], "%s gets the cluster's seeds", name)
		require.Empty(t, env["ORDERFLOW_REDIS_URL"], "%s does not get the single Redis", name)
		// The override's environment joins the base command's.
		args := strs(at(services, name, "command"))
		for k := range env {
			c.env("docker-compose.cluster.yml: "+name, args[0], k)
		}
		require.Contains(t, at(over, name, "depends_on"), "redis-cluster-init")
	}
}

func TestDeployDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	df := string(raw)
	require.Len(t, regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1), 2, "a build stage and a runtime stage")
	require.Contains(t, df, "CGO_ENABLED=0", "a static binary")
	require.Regexp(t, `(?m)^FROM (gcr.io/distroless/static|scratch)`, df)
	require.Regexp(t, `(?m)^USER (nonroot|[1-9][0-9]*)`, df, "it runs as non-root")
	m := regexp.MustCompile(`(?m)^CMD (\[.*\])`).FindStringSubmatch(df)
	require.NotNil(t, m)
	var cmd []string
	require.NoError(t, yaml.Unmarshal([]byte(m[1]), &cmd))
	newCommandChecker(t).args("Dockerfile CMD", cmd)
}

// k8sObject is one Kubernetes manifest and the file it came from.
type k8sObject struct {
	file string
	m    map[string]any
}

func (o k8sObject) kind() string { return fmt.Sprint(o.m["kind"]) }
func (o k8sObject) name() string { return fmt.Sprint(at(o.m, "metadata", "name")) }

// kustomize collects the manifests of a kustomization directory: its
// resources (files, and directories recursively), and its patches.
func kustomize(t *testing.T, dir string) (objects []k8sObject, patches []k8sObject) {
	t.Helper()
	k := readYAMLDocs(t, filepath.Join(dir, "kustomization.yaml"))[0]
	require.Equal(t, "Kustomization", k["kind"], dir)
	for _, r := range strs(k["resources"]) {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		require.NoError(t, err, "%s names %s", dir, r)
		if st.IsDir() {
			o, pt := kustomize(t, p)
			objects, patches = append(objects, o...), append(patches, pt...)
			continue
		}
		for _, m := range readYAMLDocs(t, p) {
			objects = append(objects, k8sObject{file: p, m: m})
		}
	}
	list := func(v any) []any { l, _ := v.([]any); return l }
	for _, pt := range list(k["patches"]) {
		p := filepath.Join(dir, fmt.Sprint(at(pt, "path")))
		for _, m := range readYAMLDocs(t, p) {
			patches = append(patches, k8sObject{file: p, m: m})
		}
	}
	return objects, patches
}

func TestDeployKubernetes(t *testing.T) {
	t.Parallel()
	c := newCommandChecker(t)
	root := filepath.Join(repoRoot, "deploy/k8s")
	kinds := map[string]bool{"Deployment": true, "StatefulSet": true, "Service": true, "ConfigMap": true, "Secret": true,
		"PodDisruptionBudget": true, "ScaledObject": true, "Job": true}
	// The shutdown timeout plus the process's margin (waitAndShutdown).
	const shutdownMargin = 10*time.Second + 5*time.Second
	for _, overlay := range []string{"single", "cluster"} {
		t.Run(overlay, func(t *testing.T) {
			objects, patches := kustomize(t, filepath.Join(root, "overlays", overlay))
			byKind := map[string][]k8sObject{}
			for _, o := range objects {
				require.True(t, kinds[o.kind()], "%s: unexpected kind %s", o.file, o.kind())
				require.NotEmpty(t, o.m["apiVersion"], o.file)
				byKind[o.kind()] = append(byKind[o.kind()], o)
			}
			// The overlay's config: the patched ConfigMap names a Redis.
			config := map[string]string{}
			for _, o := range append(byKind["ConfigMap"], patches...) {
				for k, v := range at(o.m, "data").(map[string]any) {
					config[k] = fmt.Sprint(v)
				}
			}
			want := map[string]string{"single": "ORDERFLOW_REDIS_URL", "cluster": "ORDERFLOW_REDIS_CLUSTER"}[overlay]
			require.NotEmpty(t, config[want], "the %s overlay sets %s", overlay, want)

			deployments := map[string]k8sObject{}
			for _, o := range byKind["Deployment"] {
				deployments[o.name()] = o
				spec := at(o.m, "spec", "template", "spec")
				grace, _ := at(spec, "terminationGracePeriodSeconds").(float64)
				require.Greater(t, time.Duration(grace)*time.Second, shutdownMargin, "%s: terminationGracePeriodSeconds", o.name())
				require.Equal(t, true, at(spec, "securityContext", "runAsNonRoot"), "%s runs as non-root", o.name())
				ctr := at(spec, "containers", 0)
				require.NotNil(t, at(ctr, "resources", "requests"), "%s: resources", o.name())
				require.NotNil(t, at(ctr, "resources", "limits"), "%s: resources", o.name())
				ports := map[string]bool{}
				for _, p := range at(ctr, "ports").([]any) {
					ports[fmt.Sprint(at(p, "name"))] = true
				}
				for _, probe := range []string{"readinessProbe", "livenessProbe"} {
					path := fmt.Sprint(at(ctr, probe, "httpGet", "path"))
					require.Contains(t, []string{"/healthz", "/readyz"}, path, "%s: %s", o.name(), probe)
					require.True(t, ports[fmt.Sprint(at(ctr, probe, "httpGet", "port"))], "%s: %s probes a port the container has", o.name(), probe)
				}
				if o.name() != "orderflow-sim" {
					require.Equal(t, "/readyz", at(ctr, "readinessProbe", "httpGet", "path"), o.name())
					require.Equal(t, "/healthz", at(ctr, "livenessProbe", "httpGet", "path"), o.name())
				}
				cmd, values := c.args(o.file+": "+o.name(), strs(at(ctr, "args")))
				if d, ok := values["shutdown-timeout"]; ok {
					timeout, err := time.ParseDuration(d)
					require.NoError(t, err)
					require.Greater(t, time.Duration(grace)*time.Second, timeout+5*time.Second, o.name())
				}
				list := func(v any) []any { l, _ := v.([]any); return l }
				for _, e := range list(at(ctr, "env")) {
					c.env(o.name(), cmd, fmt.Sprint(at(e, "name")))
				}
				for _, from := range list(at(ctr, "envFrom")) {
					require.Equal(t, "orderflow-redis", at(from, "configMapRef", "name"))
					for k := range config {
						c.env(o.name()+" (ConfigMap orderflow-redis)", cmd, k)
					}
				}
			}
			for _, name := range []string{"orderflow-api", "orderflow-worker", "orderflow-sim"} {
				require.Contains(t, deployments, name)
			}

			// Services select a workload and target its named ports.
			workloads := append(byKind["Deployment"], byKind["StatefulSet"]...)
			for _, svc := range byKind["Service"] {
				sel := at(svc.m, "spec", "selector").(map[string]any)
				var target *k8sObject
				for i, w := range workloads {
					if fmt.Sprint(at(w.m, "spec", "template", "metadata", "labels", "app.kubernetes.io/name")) == fmt.Sprint(sel["app.kubernetes.io/name"]) {
						target = &workloads[i]
					}
				}
				require.NotNil(t, target, "Service %s selects no workload", svc.name())
				names := map[string]bool{}
				for _, p := range at(target.m, "spec", "template", "spec", "containers", 0, "ports").([]any) {
					names[fmt.Sprint(at(p, "name"))] = true
				}
				for _, p := range at(svc.m, "spec", "ports").([]any) {
					require.True(t, names[fmt.Sprint(at(p, "targetPort"))], "Service %s targets port %v", svc.name(), at(p, "targetPort"))
				}
			}
			// Disruption budgets cover the API and the workers.
			covered := map[string]bool{}
			for _, pdb := range byKind["PodDisruptionBudget"] {
				covered[fmt.Sprint(at(pdb.m, "spec", "selector", "matchLabels", "app.kubernetes.io/name"))] = true
			}
			require.True(t, covered["orderflow-api"] && covered["orderflow-worker"], "PodDisruptionBudgets: %v", covered)
			// The Secret holds the tokens and the Redis password, which the
			// API and the workers read from it.
			require.Len(t, byKind["Secret"], 1)
			keys := at(byKind["Secret"][0].m, "stringData").(map[string]any)
			require.Contains(t, keys, "api-tokens")
			require.Contains(t, keys, "redis-password")
			// KEDA scales the worker Deployment on the backlog metric the
			// workers export.
			require.Len(t, byKind["ScaledObject"], 1)
			so := byKind["ScaledObject"][0].m
			require.Equal(t, "orderflow-worker", at(so, "spec", "scaleTargetRef", "name"))
			require.Equal(t, "prometheus", at(so, "spec", "triggers", 0, "type"))
			require.Contains(t, fmt.Sprint(at(so, "spec", "triggers", 0, "metadata", "query")), "orderflow_queue_pending")
			// The Redis of the overlay.
			require.Len(t, byKind["StatefulSet"], 1)
			redisArgs := strings.Join(append(strs(at(byKind["StatefulSet"][0].m, "spec", "template", "spec", "containers", 0, "command")),
				strs(at(byKind["StatefulSet"][0].m, "spec", "template", "spec", "containers", 0, "args"))...), " ")
			require.Contains(t, redisArgs, "--appendonly yes")
			if overlay == "cluster" {
				require.Contains(t, redisArgs, "--cluster-enabled yes")
				require.EqualValues(t, 3, at(byKind["StatefulSet"][0].m, "spec", "replicas"))
				require.Len(t, byKind["Job"], 1, "the Job that joins the nodes")
			}
		})
	}
}
