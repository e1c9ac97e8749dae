// Package redistest gives tests an isolated Redis: an in-process miniredis, or a
// real redis-server process started on a free port for the test alone.
//
// A real-Redis test skips when redis-server is not installed, except under
// CI=true, where it fails instead: CI must never pass by skipping the tier that
// exercises timing, persistence and restarts.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Backend names a kind of Redis that a suite runs against.
type Backend string

// The backends every conformance suite runs on.
const (
	BackendMiniredis Backend = "miniredis"
	BackendRedis     Backend = "redis"
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
}

// Client returns a new go-redis client for the instance, closed at the end of
// the test.
func (i *Instance) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
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
	for _, b := range Backends {
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
	t    testing.TB
	bin  string
	dir  string
	port int
	opts Options

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartServer starts redis-server on a free port with its data in a
// temporary directory, and stops it when the test ends.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := RequireBinary(t)
	s := &Server{t: t, bin: bin, dir: t.TempDir(), opts: opts}
	var err error
	for range 5 {
		s.port, err = FreePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL for the server.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return "redis://:" + s.opts.Password + "@" + s.Addr()
	}
	return "redis://" + s.Addr()
}

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--protected-mode", "no",
	}
	if s.opts.AppendFsyncAlways {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	return append(a, s.opts.Args...)
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args()...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited at start: %s", s.logTail())
		default:
		}
		if s.ping() == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server did not answer within 10s: %s", s.logTail())
}

func (s *Server) ping() error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.opts.Password, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return c.Ping(ctx).Err()
}

func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	for s.ping() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

// Stop stops the server; it is safe to call more than once.
func (s *Server) Stop() { s.Kill() }

// FreePort asks the kernel for a free TCP port on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
