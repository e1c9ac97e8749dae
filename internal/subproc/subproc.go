// Package subproc runs orderflow subcommands as child processes for the
// benchmark and chaos harnesses: it starts them, waits until they are
// ready, keeps the tail of their output, and stops or kills them.
package subproc

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one child process.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

// maxLog bounds the output a Proc keeps.
const maxLog = 1 << 16

// Start runs exe with args. When waitLine is not empty it waits (up to 30s)
// until a line of the child's stdout contains it.
func Start(exe string, args []string, waitLine string) (*Proc, error) {
	p := &Proc{cmd: exec.Command(exe, args...), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = writerFunc(p.keep)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %s: %w", exe, strings.Join(args, " "), err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			p.keep([]byte(sc.Text() + "\n"))
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
		return nil, fmt.Errorf("%s exited at start: %s", args[0], p.Output())
	case <-time.After(30 * time.Second):
		p.Stop()
		return nil, fmt.Errorf("%s did not start within 30s: %s", args[0], p.Output())
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func (p *Proc) keep(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log.Len() < maxLog {
		p.log.Write(b)
	}
}

// Output returns what the child wrote, up to 64 KiB.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Pid returns the child's process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM and waits, then SIGKILL after 20s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// StopAll stops every process at once.
func StopAll(ps []*Proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.Stop)
	}
	wg.Wait()
}
