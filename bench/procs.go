package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/internal/redisserver"
	"github.com/orderflow/orderflow/internal/subproc"
)

// ReadyLine is what a benchmark worker prints once it is running.
const ReadyLine = "bench-worker ready"

// startWorkers starts n benchmark worker processes.
func (h *harness) startWorkers(n int, o WorkerOptions) ([]*subproc.Proc, error) {
	var out []*subproc.Proc
	for range n {
		p, err := h.startWorker(o)
		if err != nil {
			stopAll(out)
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// startWorker starts one benchmark worker process and waits until it runs.
func (h *harness) startWorker(o WorkerOptions) (*subproc.Proc, error) {
	args := append([]string{"bench-worker", "--mode", o.Mode}, h.redisArgs()...)
	args = append(args, "--concurrency", strconv.Itoa(o.Concurrency), "--task-check-interval", o.TaskCheckInterval.String(),
		"--wake="+strconv.FormatBool(o.Wake), "--provider-latency", o.ProviderLatency.String(),
		"--lease", o.Lease.String(), "--reaper-interval", o.ReaperInterval.String(), "--wake-workers", strconv.Itoa(o.WakeWorkers))
	if o.WorkerID != "" {
		args = append(args, "--worker-id", o.WorkerID)
	}
	args = append(args, o.FlowArgs...)
	if h.cfg.ProfileDir != "" {
		h.profiles++
		name := o.Mode
		if o.WorkerID != "" {
			name += "-" + o.WorkerID
		}
		args = append(args, "--cpuprofile", fmt.Sprintf("%s/%s-%d.pprof", h.cfg.ProfileDir, name, h.profiles),
			"--memprofile", fmt.Sprintf("%s/%s-%d.heap", h.cfg.ProfileDir, name, h.profiles))
	}
	return subproc.Start(h.cfg.Exe, args, ReadyLine)
}

func stopAll(ps []*subproc.Proc) {
	subproc.StopAll(ps)
	if os.Getenv("BENCH_DEBUG") != "" {
		for _, p := range ps {
			fmt.Fprint(os.Stderr, p.Output())
		}
	}
}

// startAPI starts `orderflow api` on a free port and waits until it is ready.
func (h *harness) startAPI(ctx context.Context) (*subproc.Proc, string, error) {
	port, err := redisserver.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"api"}, h.redisArgs()...)
	p, err := subproc.Start(h.cfg.Exe, append(args, "--listen", addr, "--log-level", "warn"), "")
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
			p.Stop()
			return nil, "", fmt.Errorf("api did not become ready: %s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
