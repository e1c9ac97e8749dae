// Package cli is the orderflow command: it parses flags and environment
// variables into the configs of package server and runs one subcommand until
// SIGINT or SIGTERM. cmd/orderflow only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// Env is what a subcommand runs with.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

func commands() []command {
	return []command{
		{"dev", "The whole system in one process: embedded Redis (unless --redis-url), API, worker, simulators, asynqmon.", runDev},
		{"api", "The REST API and asynqmon.", runAPI},
		{"worker", "A worker: runs workflow steps from the queues.", runWorker},
		{"sim", "The provider simulators (inventory, payment, shipping) over HTTP.", runSim},
		{"audit", "Check every order against the provider ledgers; exits 1 on any violation.", runAudit},
		{"versions", "check|migrate: whether orders in flight could move to another workflow version, and the move.", runVersions},
		{"orders", "create|list|get|history|watch|cancel|approve|reject|pause|resume: orders, through the API.", runOrders},
		{"providers", "[list]|pause|resume: the providers' flow control, through the API.", runProviders},
		{"diagram", "The state diagram of a workflow version, as mermaid or DOT.", runDiagram},
		{"chaos", "The chaos harness (needs redis-server): faults, kills and a Redis restart, then an audit.", runChaos},
		{"bench", "The benchmark harness (needs redis-server): orderflow against a raw asynq chain, and more.", runBench},
		{"bench-worker", "A benchmark worker process, started by bench.", runBenchWorker},
		{"version", "Print the version.", runVersion},
	}
}

// usageError marks errors that should print usage and exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// Main runs the orderflow command with args (without the program name) and
// returns the exit code. ctx is cancelled on SIGINT/SIGTERM by the caller.
// Standard input is os.Stdin.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Run(ctx, args, os.Stdin, stdout, stderr)
}

// Run is Main reading standard input from stdin.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var ue usageError
		switch {
		case err == nil:
			return ExitOK
		case errors.Is(err, flag.ErrHelp):
			return ExitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "orderflow %s: %v\n", c.name, err)
			return ExitUsage
		default:
			fmt.Fprintf(stderr, "orderflow %s: %v\n", c.name, err)
			return ExitError
		}
	}
	fmt.Fprintf(stderr, "orderflow: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return ExitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: orderflow <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'orderflow <command> --help' for its flags.")
}

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet("version", "Print the version.", env.Stderr)
	if err := parseFlags(fs, args); err != nil {
		return usage(err)
	}
	fmt.Fprintln(env.Stdout, "orderflow", Version)
	return nil
}

func usage(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// logFlags are the logging flags every long-running command has.
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flag.FlagSet, defaultFormat string) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", defaultFormat, "log format: json or text")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %q is not debug, info, warn or error", l.level)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var log *slog.Logger
	switch strings.ToLower(l.format) {
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	default:
		return nil, usageError{fmt.Errorf("--log-format: %q is not json or text", l.format)}
	}
	redis.SetLogger(redisLogger{log})
	return log, nil
}

// waitAndShutdown blocks until ctx ends, then runs stop with a timeout.
func waitAndShutdown(ctx context.Context, log *slog.Logger, timeout time.Duration, stop func(context.Context) error) error {
	<-ctx.Done()
	log.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return stop(sctx)
}
