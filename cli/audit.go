package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/audit"
)

// errViolations makes the audit exit non-zero.
var errViolations = errors.New("the audit found violations")

func runAudit(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet("audit", "Check every order against the provider ledgers; exits 1 on any violation.", env.Stderr)
	maxRunning := fs.Duration("max-running", time.Hour, "how long an order may stay unfinished")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var r redisFlags
	r.register(fs)
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
	rep, err := audit.Run(ctx, conn.Client, audit.Config{MaxRunning: *maxRunning})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "orders: %d %v\neffects: %v\nviolations: %d\n", rep.Total(), rep.Orders, rep.Effects, len(rep.Violations))
		for _, v := range rep.Violations {
			fmt.Fprintf(env.Stdout, "  %s %s%s: %s\n", v.Rule, v.OrderID, v.Key, v.Detail)
		}
	}
	if !rep.OK() {
		return errViolations
	}
	return nil
}
