package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/internal/redisserver"
)

// proc is an orderflow subprocess of the harness.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

// ReadyLine is what a benchmark worker prints once it is running.
const ReadyLine = "bench-worker ready"

func startProc(exe string, args []string, waitLine string) (*proc, error) {
	p := &proc{cmd: exec.Command(exe, args...), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = &lockedWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %s: %w", exe, strings.Join(args, " "), err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if waitLine == "" || strings.Contains(sc.Text(), waitLine) {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if waitLine == "" {
		return p, nil
	}
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited at start: %s", args[0], p.output())
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start within 30s: %s", args[0], p.output())
	}
}

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.log.Len() < 1<<16 {
		w.p.log.Write(b)
	}
	return len(b), nil
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits, then SIGKILL after 20s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startWorkers starts n benchmark worker processes.
func (h *harness) startWorkers(n int, o WorkerOptions) ([]*proc, error) {
	var out []*proc
	for range n {
		args := []string{"bench-worker", "--mode", o.Mode, "--redis-url", h.redisURL,
			"--concurrency", strconv.Itoa(o.Concurrency), "--task-check-interval", o.TaskCheckInterval.String(),
			"--wake=" + strconv.FormatBool(o.Wake), "--provider-latency", o.ProviderLatency.String()}
		if h.cfg.ProfileDir != "" {
			h.profiles++
			args = append(args, "--cpuprofile", fmt.Sprintf("%s/%s-%d.pprof", h.cfg.ProfileDir, o.Mode, h.profiles))
		}
		p, err := startProc(h.cfg.Exe, args, ReadyLine)
		if err != nil {
			stopAll(out)
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func stopAll(ps []*proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
	if os.Getenv("BENCH_DEBUG") != "" {
		for _, p := range ps {
			fmt.Fprint(os.Stderr, p.output())
		}
	}
}

// startAPI starts `orderflow api` on a free port and waits until it is ready.
func (h *harness) startAPI(ctx context.Context) (*proc, string, error) {
	port, err := redisserver.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(h.cfg.Exe, []string{"api", "--redis-url", h.redisURL, "--listen", addr, "--log-level", "warn"}, "")
	if err != nil {
		return nil, "", err
	}
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, url, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, "", fmt.Errorf("api did not become ready: %s", p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
