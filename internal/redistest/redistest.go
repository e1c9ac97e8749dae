// Package redistest gives tests an isolated Redis: an in-process miniredis, or a
// real redis-server process started on a free port for the test alone.
//
// A real-Redis test skips when redis-server is not installed, except under
// CI=true, where it fails instead: CI must never pass by skipping the tier that
// exercises timing, persistence and restarts.
package redistest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/internal/redisserver"
)

// Backend names a kind of Redis that a suite runs against.
type Backend string

// The backends every conformance suite runs on, and the cluster that the
// suites made to run on one add (EachOf).
const (
	BackendMiniredis Backend = "miniredis"
	BackendRedis     Backend = "redis"
	// BackendCluster is a 3-master Redis Cluster of redis-server processes.
	BackendCluster Backend = "cluster"
)

// Backends lists the backends in the order suites run them.
var Backends = []Backend{BackendMiniredis, BackendRedis}

// Instance is one isolated Redis for one test.
type Instance struct {
	Backend Backend
	// Addr is host:port.
	Addr string
	// URL is a redis:// URL for Addr, with the password when one is set.
	URL string
	// Mini is set for the miniredis backend.
	Mini *miniredis.Miniredis
	// Server is set for the real redis-server backend.
	Server *Server
	// Cluster is set for the cluster backend; Addr and URL are then its
	// first node's.
	Cluster *Cluster
}

// Client returns a new go-redis client for the instance (a cluster client
// for the cluster backend), closed at the end of the test.
func (i *Instance) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	if i.Cluster != nil {
		return i.Cluster.Client(t)
	}
	opt, err := redis.ParseURL(i.URL)
	if err != nil {
		t.Fatalf("parsing %s: %v", i.URL, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// New starts an isolated Redis of the given backend.
func New(t testing.TB, b Backend) *Instance { return NewWith(t, b, Options{}) }

// NewWith starts an isolated Redis of the given backend; opts apply to a real
// redis-server (miniredis has no persistence and no password here).
func NewWith(t testing.TB, b Backend, opts Options) *Instance {
	t.Helper()
	switch b {
	case BackendMiniredis:
		m := miniredis.RunT(t)
		return &Instance{Backend: b, Addr: m.Addr(), URL: "redis://" + m.Addr(), Mini: m}
	case BackendRedis:
		s := StartServer(t, opts)
		return &Instance{Backend: b, Addr: s.Addr(), URL: s.URL(), Server: s}
	case BackendCluster:
		c := StartCluster(t, ClusterOptions{AppendFsyncAlways: opts.AppendFsyncAlways, Password: opts.Password})
		n := c.Nodes[0]
		return &Instance{Backend: b, Addr: n.Addr(), URL: n.URL(), Cluster: c}
	default:
		t.Fatalf("unknown backend %q", b)
		return nil
	}
}

// Stop makes the instance unreachable, as a crash would. A real server loses
// what it did not persist; miniredis keeps its data.
func (i *Instance) Stop() {
	if i.Mini != nil {
		i.Mini.Close()
		return
	}
	if i.Cluster != nil {
		i.Cluster.Stop()
		return
	}
	i.Server.Kill()
}

// Start brings a stopped instance back on the same address.
func (i *Instance) Start(t testing.TB) {
	t.Helper()
	if i.Mini != nil {
		if err := i.Mini.Restart(); err != nil {
			t.Fatalf("restarting miniredis: %v", err)
		}
		return
	}
	i.Server.Restart()
}

// Each runs f as a parallel subtest once per backend, each with its own Redis.
func Each(t *testing.T, f func(t *testing.T, r *Instance)) {
	t.Helper()
	EachOf(t, Backends, f)
}

// EachOf runs f as a parallel subtest once per backend of bs, each with its
// own Redis.
func EachOf(t *testing.T, bs []Backend, f func(t *testing.T, r *Instance)) {
	t.Helper()
	for _, b := range bs {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f(t, New(t, b))
		})
	}
}

// InCI reports whether the tests run under CI=true.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// RequireBinary returns the path of redis-server. Outside CI a missing binary
// skips the test; under CI it fails it.
func RequireBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("redis-server not found and CI=true: real-Redis tests must run in CI (install redis-server)")
	}
	t.Skip("redis-server not found; skipping real-Redis test (it fails under CI=true)")
	return ""
}

// RequireCLI returns the path of redis-cli, which makes clusters, as
// RequireBinary does for redis-server.
func RequireCLI(t testing.TB) string {
	t.Helper()
	RequireBinary(t)
	p, err := exec.LookPath("redis-cli")
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("redis-cli not found and CI=true: cluster tests must run in CI (install redis-tools)")
	}
	t.Skip("redis-cli not found; skipping cluster test (it fails under CI=true)")
	return ""
}

// Options configure a redis-server process.
type Options struct {
	// AppendFsyncAlways turns on AOF with appendfsync always, so that a
	// restart loses nothing acknowledged.
	AppendFsyncAlways bool
	// Password sets requirepass.
	Password string
	// Args are extra redis-server arguments, as "--name value" pairs.
	Args []string
}

// Server is a redis-server process owned by one test.
type Server struct {
	*redisserver.Server
	t testing.TB
}

// StartServer starts redis-server on a free port with its data in a
// temporary directory, and stops it when the test ends.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	RequireBinary(t)
	s, err := redisserver.Start(redisserver.Options{
		Dir: t.TempDir(), AppendFsyncAlways: opts.AppendFsyncAlways, Password: opts.Password, Args: opts.Args,
	})
	if err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	return &Server{Server: s, t: t}
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Server.Restart(); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

// FreePort asks the kernel for a free TCP port on loopback.
func FreePort() (int, error) { return redisserver.FreePort() }
