package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// ordersWatch follows an order until it ends: each round waits for the
// order with GET ?wait= (which answers at once when it finishes), then
// prints what its history gained (state changes, failed attempts, signals)
// and its progress when that changed. It exits 0 when the order ended,
// whatever its status.
func ordersWatch(ctx context.Context, env *Env, args []string) error {
	var c clientFlags
	fs := newOrdersFlagSet(env, "watch", "<order_id>", "Follow an order live until it ends, printing each state change, failed attempt, signal and progress.", &c)
	interval := fs.Duration("interval", time.Second, "how long each round waits for the order to finish before looking again (at most 30s)")
	pos, err := parseWithArgs(fs, args, "<order_id>")
	if err != nil {
		return usage(err)
	}
	if *interval <= 0 || *interval > 30*time.Second {
		return usageError{fmt.Errorf("--interval must be from 1ms to 30s, got %s", *interval)}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	id := pos[0]
	seen := 0
	lastProgress := ""
	for round := 0; ; round++ {
		q := url.Values{}
		if round > 0 {
			q.Set("wait", interval.String())
		}
		var o orders.Resource
		if _, err := cl.get(ctx, "/v1/orders/"+id, q, &o); err != nil {
			return err
		}
		var h historyBody
		if _, err := cl.get(ctx, "/v1/orders/"+id+"/history", nil, &h); err != nil {
			return err
		}
		if p := o.Progress; p != nil {
			key := fmt.Sprintf("%s %d %s", p.Step, p.Percent, p.Detail)
			if key != lastProgress {
				lastProgress = key
				if err := printWatchProgress(env, c.json, id, p); err != nil {
					return err
				}
			}
		}
		for _, ev := range h.Events {
			if ev.Seq <= seen {
				continue
			}
			seen = ev.Seq
			if err := printWatchEvent(env, c.json, id, ev); err != nil {
				return err
			}
		}
		if statemachine.Status(o.Status).Terminal() {
			if c.json {
				b, _ := json.Marshal(o)
				_, err := fmt.Fprintf(env.Stdout, "%s\n", b)
				return err
			}
			_, err := fmt.Fprintf(env.Stdout, "%s ended %s (%s)\n", id, o.Status, o.State)
			return err
		}
	}
}

// printWatchEvent prints one history event as a line, or as a JSON line
// {"order_id","event":{...}}.
func printWatchEvent(env *Env, asJSON bool, id string, ev statemachine.Event) error {
	if asJSON {
		b, err := json.Marshal(map[string]any{"order_id": id, "event": ev})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(env.Stdout, "%s  %s\n", ev.At.UTC().Format("15:04:05.000"), describeEvent(ev))
	return err
}

// printWatchProgress prints a long step's progress.
func printWatchProgress(env *Env, asJSON bool, id string, p *orders.Progress) error {
	if asJSON {
		b, err := json.Marshal(map[string]any{"order_id": id, "progress": p})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(env.Stdout, "%s  %s %d%% %s\n", p.At.UTC().Format("15:04:05.000"), p.Step, p.Percent, p.Detail)
	return err
}
