package bench

import (
	"context"
	"fmt"
	"strings"
)

// FlowResult is what flow control costs: the order pipeline run without
// it, and with each kind of limit on, each too high to hold anything back.
type FlowResult struct {
	Runs []FlowRun
}

// FlowRun is one configuration of the flow part.
type FlowRun struct {
	// Name and Args describe the configuration (the worker's flags).
	Name string
	Args []string
	// Steps is how many steps of an order it gates.
	Steps  int
	Result ThroughputResult
}

// flowConfigs are the configurations the flow part runs, the first without
// flow control.
var flowConfigs = []FlowRun{
	{Name: "no flow control", Steps: 0},
	{Name: "provider gate", Args: []string{"--flow-gate"}, Steps: 3},
	{Name: "concurrency limit", Args: []string{"--limit", "charge:customer_id=100000"}, Steps: 1},
	{Name: "every limit", Args: []string{
		"--inventory-rps", "1000000", "--inventory-burst", "10000", "--payment-rps", "1000000", "--payment-burst", "10000",
		"--shipping-rps", "1000000", "--shipping-burst", "10000", "--limit", "charge:customer_id=100000", "--breaker-error-rate", "0.5",
	}, Steps: 3},
}

// flowCost runs the configurations back to back.
func (h *harness) flowCost(ctx context.Context) (FlowResult, error) {
	var r FlowResult
	n := h.cfg.FlowOrders
	for _, c := range flowConfigs {
		h.logf("flow control cost: %d orders, %s %s", n, c.Name, strings.Join(c.Args, " "))
		res, err := h.throughput(ctx, ModeOrderflow, 1, n, 0, c.Args...)
		if err != nil {
			return r, err
		}
		c.Result = res
		r.Runs = append(r.Runs, c)
	}
	return r, nil
}

// markdown renders the flow-control section.
func (r FlowResult) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("### What flow control costs")
	w("")
	w("%d orders each, one worker process of concurrency 20, in-process zero-latency providers, the closed-loop driver of the throughput runs. "+
		"Each configuration is a worker's flags, every limit too high to hold anything back:", r.Runs[0].Result.Orders)
	w("")
	for _, c := range r.Runs {
		args := "none: a worker with no flow flag sets no `engine.FlowControl`"
		if len(c.Args) > 0 {
			args = "`" + strings.Join(c.Args, " ") + "`"
		}
		w("- **%s** (%d gated steps an order): %s", c.Name, c.Steps, args)
	}
	w("")
	w("A gated step asks the provider's gate (one script) and takes its rate-limit token (one redis_rate script) and its concurrency slot " +
		"(one script) as configured, reports its outcome to the gate and gives its slot back (one script each), and begins its attempt " +
		"with a write of its own instead of in the transition that entered its state. Commands include those the scripts run.")
	w("")
	head, sep := "| |", "|---|"
	for _, c := range r.Runs {
		head += " " + c.Name + " |"
		sep += "---:|"
	}
	w("%s", head)
	w("%s", sep)
	row := func(name string, f func(c FlowRun) string) {
		line := "| " + name + " |"
		for _, c := range r.Runs {
			line += " " + f(c) + " |"
		}
		w("%s", line)
	}
	base := r.Runs[0].Result
	perStep := func(c FlowRun, v, b float64) string {
		if c.Steps == 0 {
			return ""
		}
		return fmt.Sprintf("**+%.1f**", (v-b)/float64(c.Steps))
	}
	row("orders/s", func(c FlowRun) string { return fmt.Sprintf("%.0f", c.Result.OrdersPerSec) })
	row("latency p50 under load", func(c FlowRun) string { return ms(c.Result.P50) })
	row("Redis commands per order", func(c FlowRun) string { return fmt.Sprintf("%.1f", c.Result.CommandsPerOrd) })
	row("Redis commands per gated step, above none", func(c FlowRun) string {
		return perStep(c, c.Result.CommandsPerOrd, base.CommandsPerOrd)
	})
	row("Redis round trips per order (reads)", func(c FlowRun) string { return fmt.Sprintf("%.1f", c.Result.ReadsPerOrder) })
	row("Redis round trips per gated step, above none", func(c FlowRun) string {
		return perStep(c, c.Result.ReadsPerOrder, base.ReadsPerOrder)
	})
	row("worker CPU s per 1,000 orders", func(c FlowRun) string { return fmt.Sprintf("%.3f", c.Result.CPUPer1000) })
	row("Redis CPU s per 1,000 orders", func(c FlowRun) string { return fmt.Sprintf("%.3f", c.Result.RedisCPU1000) })
	w("")
	w("Top commands, every limit: %s.", strings.Join(r.Runs[len(r.Runs)-1].Result.TopCommands, ", "))
	return b.String()
}
