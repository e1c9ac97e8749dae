package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/chaos"
)

// errChaos makes a chaos run that broke a promise exit non-zero.
var errChaos = errors.New("the chaos run lost orders or applied effects twice")

func runChaos(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("chaos", "The chaos harness (needs redis-server): real processes, faults, kills, a Redis restart, then an audit.", env.Stderr)
	var c chaos.Config
	fs.IntVar(&c.Orders, "orders", 2000, "distinct orders to send")
	fs.IntVar(&c.Workers, "workers", 3, "worker processes")
	fs.IntVar(&c.KillsPerWorker, "kills-per-worker", 5, "SIGKILLs of each worker")
	fs.IntVar(&c.RedisRestarts, "redis-restarts", 2, "kills and restarts of Redis")
	fs.DurationVar(&c.Duration, "duration", 40*time.Second, "how long the load and the kills are spread over")
	fs.Float64Var(&c.FaultRate, "fault-rate", 0.2, "share of provider calls that misbehave")
	fs.DurationVar(&c.Lease, "lease", 2*time.Second, "the workers' lease")
	fs.DurationVar(&c.Settle, "settle", 5*time.Minute, "how long to wait for every order to finish")
	fs.BoolVar(&c.NoFlow, "no-flow", false, "run the workers without flow control (by default: payment 80 calls/s, burst 10, and one charge per customer at a time, audited from the providers' side)")
	fs.BoolVar(&c.Cluster, "cluster", false, "run on a 3-master Redis Cluster (needs redis-cli); a Redis restart kills one master")
	fs.IntVar(&c.Reshards, "reshards", 0, "slots migrated between masters mid-run with redis-cli --cluster reshard (with --cluster)")
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	if c.Reshards < 0 || (c.Reshards > 0 && !c.Cluster) {
		return usageError{errors.New("--reshards must not be negative, and needs --cluster")}
	}
	if c.Orders < 1 || c.Workers < 1 || c.KillsPerWorker < 0 || c.RedisRestarts < 0 || c.Duration <= 0 ||
		c.FaultRate < 0 || c.FaultRate > 1 || c.Lease < 100*time.Millisecond || c.Settle <= 0 {
		return usageError{errors.New("--orders and --workers must be positive, --fault-rate within 0..1, --lease at least 100ms")}
	}
	c.Log = env.Stderr
	// The harness kills Redis on purpose; go-redis's own complaints about it
	// are noise here.
	redis.SetLogger(redisLogger{slog.New(slog.DiscardHandler)})
	res, err := chaos.Run(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, res.String())
	if !res.OK() {
		return errChaos
	}
	return nil
}
