package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// runVersions is `orderflow versions check|migrate`: a dry run over the
// orders in flight of one workflow version, reporting order by order
// whether each could move to another version, and the move of those that
// can, each with one compare-and-set recorded in its history.
func runVersions(ctx context.Context, env *Env, args []string) error {
	action := ""
	if len(args) > 0 && (args[0] == "check" || args[0] == "migrate") {
		action, args = args[0], args[1:]
	}
	migrate := action == "migrate"
	fs := newFlagSet("versions", "check|migrate: whether the orders in flight of one workflow version could move to another (check, a dry run), and the move (migrate).", env.Stderr)
	from := fs.Int("from", 0, "the version whose orders in flight are checked")
	to := fs.Int("to", 0, "the version they would move to")
	mapping := fs.String("map", "", "states named differently in the new version: old=new,...")
	asJSON := fs.Bool("json", false, "print one JSON object per order")
	var r redisFlags
	var wf workflowFlags
	r.register(fs)
	r.registerShards(fs)
	wf.register(fs, false, true)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	if action == "" {
		return usageError{errors.New("usage: orderflow versions check|migrate --from N --to M [--map old=new,...] [--json]")}
	}
	reg, err := wf.registry()
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range []struct {
		flag string
		n    int
	}{{"--from", *from}, {"--to", *to}} {
		if _, err := reg.Get(statemachine.OrderWorkflow, v.n); err != nil {
			errs = append(errs, fmt.Errorf("%s %d: no such version of the order workflow", v.flag, v.n))
		}
	}
	if *from == *to {
		errs = append(errs, errors.New("--from and --to must differ"))
	}
	m, err := statemachine.ParseStateMap(*mapping)
	if err != nil {
		errs = append(errs, fmt.Errorf("--map: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
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
	store := statemachine.NewStore(conn.Client, statemachine.StoreConfig{Shards: shards})
	defer store.Close()
	eng, err := engine.New(engine.Config{}, store, reg, nil, tasks.NewQueue(conn.Client, tasks.QueueConfig{}), nil)
	if err != nil {
		return err
	}
	act := eng.CheckMigration
	if migrate {
		act = eng.Migrate
	}
	var checked, safe int
	err = store.Running(ctx, statemachine.OrderWorkflow, *from, func(in *statemachine.Instance) error {
		c, err := act(ctx, in.ID, *to, m)
		if errors.Is(err, statemachine.ErrNotFound) {
			return nil // finished and expired meanwhile
		}
		if err != nil {
			return fmt.Errorf("order %s: %w", in.ID, err)
		}
		checked++
		if c.Safe {
			safe++
		}
		return printCheck(env.Stdout, c, migrate, *asJSON)
	})
	if err != nil {
		return err
	}
	if !*asJSON {
		verb := "could move"
		if migrate {
			verb = "moved"
		}
		fmt.Fprintf(env.Stdout, "%d orders of v%d in flight: %d %s to v%d, %d not\n", checked, *from, safe, verb, *to, checked-safe)
	}
	return nil
}

// printCheck prints one order's verdict.
func printCheck(w io.Writer, c statemachine.MigrationCheck, migrated, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(struct {
			statemachine.MigrationCheck
			Migrated bool `json:"migrated"`
		}{c, migrated && c.Safe})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	verdict := "safe"
	switch {
	case c.Safe && migrated:
		verdict = "migrated"
	case !c.Safe:
		verdict = "unsafe: " + strings.Join(c.Problems, "; ")
	}
	_, err := fmt.Fprintf(w, "%s\t%s -> %s\t%s\n", c.ID, c.From, c.To, verdict)
	return err
}
