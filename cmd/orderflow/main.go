// Command orderflow is the durable workflow orchestrator: `orderflow dev`
// runs the whole system in one process; api, worker and sim run its parts.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/orderflow/orderflow/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
