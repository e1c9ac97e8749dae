package cli

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/bench"
)

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("bench", "The benchmark harness: orderflow against a raw asynq chain, idle latency, API throughput, sustained load, worker scaling; or, with --soak, a long steady load with a worker killed half way.", env.Stderr)
	redisURL := fs.String("redis-url", "", "Redis to use (it is flushed!); empty starts a redis-server on a free port")
	n := fs.Int("orders", 20000, "orders per throughput run")
	concurrency := fs.Int("concurrency", 20, "concurrency of each worker process")
	idle := fs.Int("idle-samples", 50, "orders sent one at a time for idle latency")
	apiDur := fs.Duration("api-duration", 5*time.Second, "how long to load POST /v1/orders")
	scaling := fs.String("scaling", "1,2,4", "worker process counts to run")
	rounds := fs.Int("rounds", 5, "alternating rounds of the orderflow/chain comparison")
	soak := fs.Bool("soak", false, "run the soak instead: a steady load for --duration, a worker killed half way")
	cluster := fs.Bool("cluster", false, "run the scale-out instead: --scaling worker counts on one redis-server, then on a 3-master Redis Cluster it starts (needs redis-cli), with per-node Redis CPU per order")
	rate := fs.Float64("rate", 300, "orders per second of the steady load (the sustained-load run, or the soak)")
	duration := fs.Duration("duration", 0, "how long the steady load runs (0: 60s for the sustained-load run, 15m with --soak)")
	workers := fs.Int("workers", 2, "worker processes of the steady load")
	latency := fs.Duration("provider-latency", 5*time.Millisecond, "how long each provider call takes in the steady load and the scaling runs")
	interval := fs.Duration("interval", time.Minute, "length of a row of the steady load's tables")
	lease := fs.Duration("lease", 5*time.Second, "the soak workers' lease")
	reaper := fs.Duration("reaper-interval", time.Second, "the soak workers' reaper interval")
	wakeWorkers := fs.Int("wake-workers", 0, "the steady-load workers' wake-path goroutines (0: the engine's default)")
	out := fs.String("out", "", "markdown file to write the results into (each part between its own markers, or the soak markers with --soak)")
	profiles := fs.String("profile-dir", "", "directory for CPU profiles of the worker processes and the driver")
	parts := fs.String("parts", strings.Join(bench.Parts, ","), "the parts to run, each written to its own section of --out: "+
		"main (throughput against the chain, idle latency, API, sustained load, scaling), priority (latency per priority under a backlog), flow (what flow control costs)")
	priorityOrders := fs.Int("priority-orders", 3000, "orders the priority part submits at once")
	flowOrders := fs.Int("flow-orders", 5000, "orders of each run of the flow part")
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	if *rate <= 0 || *duration < 0 || *workers < 1 || *workers > 16 || *latency <= 0 || *interval <= 0 || *concurrency < 1 {
		return usageError{fmt.Errorf("--rate, --interval and --provider-latency must be positive, --duration not negative, --workers from 1 to 16")}
	}
	command := strings.TrimSpace("orderflow bench " + strings.Join(args, " "))
	if *soak {
		if *lease < 100*time.Millisecond || *reaper <= 0 {
			return usageError{fmt.Errorf("--lease must be at least 100ms and --reaper-interval positive")}
		}
		res, err := bench.RunSoak(ctx, bench.SoakConfig{
			RedisURL: *redisURL, Rate: *rate, Duration: *duration, Workers: *workers, Concurrency: *concurrency,
			ProviderLatency: *latency, Lease: *lease, ReaperInterval: *reaper, Interval: *interval, WakeWorkers: *wakeWorkers,
			Log: env.Stderr, ProfileDir: *profiles, Command: command,
		})
		if err != nil {
			return err
		}
		return report(env, res, *out, "soak results")
	}
	var counts []int
	for _, s := range strings.Split(*scaling, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 1 || v > 16 {
			return usageError{fmt.Errorf("--scaling: %q is not a list of worker counts from 1 to 16", *scaling)}
		}
		counts = append(counts, v)
	}
	if *cluster {
		if *n < 100 {
			return usageError{fmt.Errorf("--orders must be at least 100")}
		}
		res, err := bench.RunScaleOut(ctx, bench.ScaleOutConfig{
			Orders: *n, Workers: counts, Concurrency: *concurrency, ProviderLatency: *latency, Log: env.Stderr, Command: command,
		})
		if err != nil {
			return err
		}
		return report(env, res, *out, "scale-out results")
	}
	if *n < 100 || *concurrency < 1 || *idle < 1 || *apiDur <= 0 || *rounds < 1 || *n / *rounds < 50 || *priorityOrders < 3 || *flowOrders < 50 {
		return usageError{fmt.Errorf("--orders must be at least 100 (50 a round), --priority-orders at least 3, --flow-orders at least 50, " +
			"and --concurrency, --idle-samples, --rounds and --api-duration positive")}
	}
	var ps []string
	for _, p := range strings.Split(*parts, ",") {
		if p = strings.TrimSpace(p); !slices.Contains(bench.Parts, p) {
			return usageError{fmt.Errorf("--parts: unknown part %q (known: %s)", p, strings.Join(bench.Parts, ", "))}
		}
		ps = append(ps, p)
	}
	res, err := bench.Run(ctx, bench.Config{
		RedisURL: *redisURL, Orders: *n, Concurrency: *concurrency, IdleSamples: *idle,
		APIDuration: *apiDur, Scaling: counts, Rounds: *rounds, Log: env.Stderr, ProfileDir: *profiles,
		ScalingLatency: *latency, SustainedRate: *rate, SustainedDuration: *duration, SustainedWorkers: *workers,
		SustainedLatency: *latency, Interval: *interval, WakeWorkers: *wakeWorkers,
		Command: command, Parts: ps, PriorityOrders: *priorityOrders, FlowOrders: *flowOrders,
	})
	if err != nil {
		return err
	}
	return report(env, res, *out, "results")
}

// benchResult is what each kind of run returns: its report, and how it
// writes its section of the performance doc.
type benchResult interface {
	Markdown() string
	WriteDoc(path string) error
}

// report prints a run's report and, with out, writes it into that file.
func report(env *Env, res benchResult, out, what string) error {
	fmt.Fprintln(env.Stdout, res.Markdown())
	if out == "" {
		return nil
	}
	if err := res.WriteDoc(out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "bench: %s written to %s\n", what, out)
	return nil
}

// writeHeapProfile writes a heap profile, after a collection, to path.
func writeHeapProfile(path string, env *Env) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(env.Stderr, "heap profile:", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintln(env.Stderr, "heap profile:", err)
	}
}

// runBenchWorker is the worker process the harness starts.
func runBenchWorker(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("bench-worker", "A benchmark worker (started by orderflow bench).", env.Stderr)
	var o bench.WorkerOptions
	fs.StringVar(&o.Mode, "mode", bench.ModeOrderflow, "orderflow or baseline")
	fs.StringVar(&o.RedisURL, "redis-url", "", "Redis URL")
	fs.StringVar(&o.RedisCluster, "redis-cluster", "", "seed addresses of a Redis Cluster, instead of --redis-url")
	fs.IntVar(&o.Concurrency, "concurrency", 20, "concurrency")
	fs.DurationVar(&o.TaskCheckInterval, "task-check-interval", 0, "asynq poll interval (0: the worker's default)")
	fs.BoolVar(&o.Wake, "wake", true, "use the wake fast path")
	fs.IntVar(&o.WakeWorkers, "wake-workers", 0, "the engine's wake-path goroutines (0: its default)")
	fs.DurationVar(&o.ProviderLatency, "provider-latency", 0, "latency added to every provider call")
	fs.StringVar(&o.WorkerID, "worker-id", "", "the worker's ID, which starts its lease tokens (empty: random)")
	fs.DurationVar(&o.Lease, "lease", 0, "the engine's lease (0: its default)")
	fs.DurationVar(&o.ReaperInterval, "reaper-interval", 0, "the engine's reaper interval (0: its default)")
	var fl flowFlags
	fl.register(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the worker to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile of the worker to this file when it stops")
	var l logFlags
	l.register(fs, "text")
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	log, err := l.logger(env.Stderr)
	if err != nil {
		return err
	}
	if (o.RedisURL == "") == (o.RedisCluster == "") {
		return usageError{fmt.Errorf("one of --redis-url and --redis-cluster is required")}
	}
	if o.Flow, err = fl.config(); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer writeHeapProfile(*memProfile, env)
	}
	// The harness waits for this line before it measures.
	return bench.RunWorker(ctx, o, log, func() { fmt.Fprintln(env.Stdout, bench.ReadyLine) })
}
