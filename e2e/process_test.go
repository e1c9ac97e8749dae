package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/syncbuf"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the binary the process tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// orderflowBinary builds cmd/orderflow once per test run.
func orderflowBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "orderflow-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "orderflow")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/orderflow").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// process is an orderflow subcommand running as its own OS process.
type process struct {
	t   testing.TB
	cmd *exec.Cmd
	out *syncbuf.Buffer
	end chan struct{}
}

// startProcess runs `orderflow <args>` and stops it at the end of the test.
func startProcess(t testing.TB, args ...string) *process {
	t.Helper()
	p := &process{t: t, out: &syncbuf.Buffer{}, end: make(chan struct{})}
	p.cmd = exec.Command(orderflowBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() { _ = p.cmd.Wait(); close(p.end) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, p.out.String())
		}
	})
	return p
}

func (p *process) signal(s syscall.Signal) {
	select {
	case <-p.end:
		return
	default:
	}
	_ = p.cmd.Process.Signal(s)
	select {
	case <-p.end:
	case <-time.After(30 * time.Second):
		p.t.Errorf("process did not exit after %v", s)
	}
}

// exitCode returns the exit code once the process ended.
func (p *process) exitCode() int {
	<-p.end
	return p.cmd.ProcessState.ExitCode()
}
