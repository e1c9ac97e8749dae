package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/audit"
)

// errViolations makes the audit exit non-zero.
var errViolations = errors.New("the audit found violations")

func runAudit(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("audit", "Check every order against the provider ledgers; exits 1 on any violation.", env.Stderr)
	maxRunning := fs.Duration("max-running", time.Hour, "how long an order may stay unfinished")
	asJSON := fs.Bool("json", false, "print the report as JSON (the body of GET /v1/audit)")
	var r redisFlags
	r.register(fs)
	r.registerShards(fs)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	if *maxRunning <= 0 {
		return usageError{errors.New("--max-running must be positive")}
	}
	conn, err := r.open(ctx, 0)
	if err != nil {
		return err
	}
	defer conn.Close()
	shards, err := r.resolveShards(ctx, conn, slog.New(slog.NewTextHandler(env.Stderr, nil)))
	if err != nil {
		return err
	}
	cfg := audit.Config{MaxRunning: *maxRunning, Shards: shards}
	var ok bool
	if *asJSON {
		ok, err = audit.WriteJSON(ctx, env.Stdout, conn.Client, cfg)
	} else {
		ok, err = printAudit(ctx, env.Stdout, conn.Client, cfg)
	}
	if err != nil {
		return err
	}
	if !ok {
		return errViolations
	}
	return nil
}

// printAudit runs the audit and prints each violation as it is found, then
// the counts. It reports whether the audit found no violation.
func printAudit(ctx context.Context, w io.Writer, rdb redis.UniversalClient, cfg audit.Config) (bool, error) {
	found := 0
	rep, err := audit.Stream(ctx, rdb, cfg, func(v audit.Violation) error {
		found++
		line := "violation: " + v.Rule
		if v.OrderID != "" {
			line += " order " + v.OrderID
		}
		if v.Key != "" {
			line += " key " + v.Key
		}
		_, err := fmt.Fprintf(w, "%s: %s\n", line, v.Detail)
		return err
	})
	if err != nil {
		return false, err
	}
	_, err = fmt.Fprintf(w, "orders: %d %v\neffects: %v\nearlier incarnations: %d\nviolations: %d\n",
		rep.Total(), rep.Orders, rep.Effects, rep.EarlierIncarnations, found)
	return found == 0, err
}
