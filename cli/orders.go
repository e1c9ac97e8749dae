package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// The orders command: an operator's client of the API (API.md). Each
// subcommand prints a table for people, or with --json the API's JSON for
// scripts, and exits 0, 1 when the API answers an error (its problem's
// title and detail are printed), or 2 on a usage error.

// ordersSubcommands are the subcommands, in the order the usage lists them.
var ordersSubcommands = []struct{ name, args, summary string }{
	{"create", "", "Place an order, from flags or from --file (- for stdin)."},
	{"list", "", "List orders, newest first, with filters."},
	{"get", "<order_id>", "Show an order."},
	{"history", "<order_id>", "Show an order's history, oldest event first."},
	{"watch", "<order_id>", "Follow an order live until it ends: each state change, retry and progress."},
	{"cancel", "<order_id>", "Signal: cancel (the order undoes what it did)."},
	{"approve", "<order_id>", "Signal: approve an order in review."},
	{"reject", "<order_id>", "Signal: reject an order in review."},
	{"pause", "<order_id>", "Signal: pause (no new step starts)."},
	{"resume", "<order_id>", "Signal: resume a paused order."},
}

// ordersHelp prints the command's usage: its subcommands, and the flags
// every subcommand takes.
func ordersHelp(env *Env) {
	var b strings.Builder
	b.WriteString("Orders, through the API. Subcommands:\n\n")
	for _, s := range ordersSubcommands {
		fmt.Fprintf(&b, "  orderflow orders %-8s %-11s %s\n", s.name, s.args, s.summary)
	}
	b.WriteString("\nEvery subcommand takes the flags below, after it, and flags of its own ('orderflow orders <subcommand> --help').")
	var c clientFlags
	fs := newFlagSet("orders", b.String(), env.Stderr)
	c.register(fs)
	fs.Usage()
}

func runOrders(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		ordersHelp(env)
		if len(args) == 0 {
			return usageError{errors.New("a subcommand is required")}
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		return ordersCreate(ctx, env, args)
	case "list":
		return ordersList(ctx, env, args)
	case "get":
		return ordersGet(ctx, env, args)
	case "history":
		return ordersHistory(ctx, env, args)
	case "watch":
		return ordersWatch(ctx, env, args)
	case statemachine.SignalCancel, statemachine.SignalApprove, statemachine.SignalReject, "pause", "resume":
		return ordersSignal(ctx, env, sub, args)
	}
	ordersHelp(env)
	return usageError{fmt.Errorf("unknown subcommand %q", sub)}
}

// parseWithArgs parses flags that may come before, between or after the
// positional arguments, requires exactly len(names) of those, and fills
// the flags not given from their environment variables.
func parseWithArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != len(names) {
		if len(pos) > len(names) {
			return nil, fmt.Errorf("unexpected argument %q", pos[len(names)])
		}
		return nil, fmt.Errorf("missing %s", strings.Join(names[len(pos):], " "))
	}
	for i, name := range names {
		if name == "<order_id>" && !orders.ValidID(pos[i]) {
			return nil, fmt.Errorf("%q is not an order ID ([A-Za-z0-9._:-]{1,128})", pos[i])
		}
	}
	return pos, parseFlags(fs, nil)
}

// newOrdersFlagSet returns the flag set of a subcommand, with the client's
// flags.
func newOrdersFlagSet(env *Env, sub, args, summary string, c *clientFlags) *flag.FlagSet {
	name := "orders " + sub
	if args != "" {
		name += " " + args
	}
	fs := newFlagSet(name, summary, env.Stderr)
	c.register(fs)
	return fs
}

// itemsFlag is the repeatable --item sku:qty:unit_price_cents.
type itemsFlag []orders.Item

func (f *itemsFlag) String() string {
	var out []string
	for _, it := range *f {
		out = append(out, fmt.Sprintf("%s:%d:%d", it.SKU, it.Qty, it.UnitPriceCents))
	}
	return strings.Join(out, ",")
}

func (f *itemsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		// The SKU may hold colons: the last two fields are the numbers.
		i := strings.LastIndex(s, ":")
		j := strings.LastIndex(s[:max(i, 0)], ":")
		if i < 0 || j < 0 {
			return fmt.Errorf("%q is not sku:qty:unit_price_cents", s)
		}
		qty, err1 := strconv.ParseInt(s[j+1:i], 10, 64)
		price, err2 := strconv.ParseInt(s[i+1:], 10, 64)
		if s[:j] == "" || err1 != nil || err2 != nil {
			return fmt.Errorf("%q is not sku:qty:unit_price_cents", s)
		}
		*f = append(*f, orders.Item{SKU: s[:j], Qty: qty, UnitPriceCents: price})
	}
	return nil
}

// metadataFlag is the repeatable --meta key=value.
type metadataFlag map[string]string

func (f metadataFlag) String() string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		out = append(out, k+"="+f[k])
	}
	return strings.Join(out, ",")
}

func (f metadataFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	f[k] = val
	return nil
}

func ordersCreate(ctx context.Context, env *Env, args []string) error {
	var c clientFlags
	fs := newOrdersFlagSet(env, "create", "", "Place an order: from flags, or from --file (a JSON body of POST /v1/orders; - reads stdin).", &c)
	var items itemsFlag
	meta := metadataFlag{}
	customer := fs.String("customer", "", "the customer's ID (customer_id)")
	currency := fs.String("currency", "USD", "three uppercase letters")
	fs.Var(&items, "item", "an order line sku:qty:unit_price_cents, such as SKU-ABC:2:2499; repeatable")
	fs.Var(meta, "meta", "a metadata pair key=value; repeatable")
	orderID := fs.String("order-id", "", "the order's ID (default: the server draws one)")
	priority := fs.String("priority", "", "high, normal or low (default normal)")
	key := fs.String("idempotency-key", "", "an Idempotency-Key: a retry with the same key and body never makes a second order")
	file := fs.String("file", "", "a JSON order to send as it is, instead of the order flags; - reads stdin")
	if _, err := parseWithArgs(fs, args); err != nil {
		return usage(err)
	}
	var body []byte
	if *file != "" {
		var given []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "customer", "currency", "item", "meta", "order-id", "priority":
				given = append(given, "--"+f.Name)
			}
		})
		if len(given) > 0 {
			return usageError{fmt.Errorf("--file excludes %s", strings.Join(given, ", "))}
		}
		var err error
		if *file == "-" {
			body, err = io.ReadAll(env.Stdin)
		} else {
			body, err = os.ReadFile(*file)
		}
		if err != nil {
			return usageError{fmt.Errorf("--file: %w", err)}
		}
		if !json.Valid(body) {
			return usageError{fmt.Errorf("--file: %s does not hold JSON", *file)}
		}
	} else {
		var missing []error
		if *customer == "" {
			missing = append(missing, errors.New("--customer is required (or --file)"))
		}
		if len(items) == 0 {
			missing = append(missing, errors.New("--item is required, at least once (or --file)"))
		}
		if err := errors.Join(missing...); err != nil {
			return usageError{err}
		}
		req := orders.Request{OrderID: *orderID, CustomerID: *customer, Currency: *currency, Items: items, Priority: *priority}
		if len(meta) > 0 {
			req.Metadata = meta
		}
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	h := http.Header{}
	if *key != "" {
		h.Set("Idempotency-Key", *key)
	}
	a, err := cl.do(ctx, http.MethodPost, "/v1/orders", nil, body, h)
	if err != nil {
		return err
	}
	return printOrderAnswer(env.Stdout, a, c.json)
}

// printOrderAnswer prints an answer that carries an order resource.
func printOrderAnswer(w io.Writer, a *apiAnswer, asJSON bool) error {
	if asJSON {
		_, err := fmt.Fprintln(w, strings.TrimSpace(string(a.body)))
		return err
	}
	var o orders.Resource
	if err := json.Unmarshal(a.body, &o); err != nil {
		return fmt.Errorf("the answer is not an order: %w", err)
	}
	if a.replayed() {
		fmt.Fprintln(w, "(a replay: the order as it is now; nothing new was started)")
	}
	return printOrder(w, o)
}

func ordersList(ctx context.Context, env *Env, args []string) error {
	var c clientFlags
	fs := newOrdersFlagSet(env, "list", "", "List orders, newest first.", &c)
	status := fs.String("status", "", "only orders with this status: running, completed, failed or cancelled")
	state := fs.String("state", "", "only orders in this state, such as charging")
	limit := fs.Int("limit", 0, "the most orders to list, 1 to 500 (default: the API's, 50)")
	cursor := fs.String("cursor", "", "the next_cursor of the previous page")
	deadLetter := fs.Bool("dead-letter", false, "only orders with a step waiting for an operator")
	if _, err := parseWithArgs(fs, args); err != nil {
		return usage(err)
	}
	if *limit < 0 || *limit > 500 {
		return usageError{fmt.Errorf("--limit must be from 1 to 500, got %d", *limit)}
	}
	q := url.Values{}
	for k, v := range map[string]string{"status": *status, "state": *state, "cursor": *cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *deadLetter {
		q.Set("dead_letter", "true")
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var page struct {
		Orders     []orders.Resource `json:"orders"`
		NextCursor string            `json:"next_cursor"`
	}
	a, err := cl.get(ctx, "/v1/orders", q, &page)
	if err != nil {
		return err
	}
	if c.json {
		_, err := fmt.Fprintln(env.Stdout, strings.TrimSpace(string(a.body)))
		return err
	}
	return printOrderList(env.Stdout, page.Orders, page.NextCursor)
}

func ordersGet(ctx context.Context, env *Env, args []string) error {
	var c clientFlags
	fs := newOrdersFlagSet(env, "get", "<order_id>", "Show an order.", &c)
	wait := fs.Duration("wait", 0, "wait up to this long (at most 30s) for the order to finish before answering")
	pos, err := parseWithArgs(fs, args, "<order_id>")
	if err != nil {
		return usage(err)
	}
	if *wait < 0 || *wait > 30*time.Second {
		return usageError{fmt.Errorf("--wait must be from 0s to 30s, got %s", *wait)}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *wait > 0 {
		q.Set("wait", wait.String())
	}
	a, err := cl.do(ctx, http.MethodGet, "/v1/orders/"+pos[0], q, nil, nil)
	if err != nil {
		return err
	}
	return printOrderAnswer(env.Stdout, a, c.json)
}

// historyBody is the body of GET /v1/orders/{id}/history.
type historyBody struct {
	OrderID string               `json:"order_id"`
	Events  []statemachine.Event `json:"events"`
}

func ordersHistory(ctx context.Context, env *Env, args []string) error {
	var c clientFlags
	fs := newOrdersFlagSet(env, "history", "<order_id>", "Show an order's history, oldest event first.", &c)
	pos, err := parseWithArgs(fs, args, "<order_id>")
	if err != nil {
		return usage(err)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var h historyBody
	a, err := cl.get(ctx, "/v1/orders/"+pos[0]+"/history", nil, &h)
	if err != nil {
		return err
	}
	if c.json {
		_, err := fmt.Fprintln(env.Stdout, strings.TrimSpace(string(a.body)))
		return err
	}
	return printHistory(env.Stdout, h.Events)
}

func ordersSignal(ctx context.Context, env *Env, signal string, args []string) error {
	var c clientFlags
	summary := "Send the " + signal + " signal to an order (POST /v1/orders/{order_id}/" + signal + ")."
	fs := newOrdersFlagSet(env, signal, "<order_id>", summary, &c)
	reason := fs.String("reason", "", "why, kept in the order's history (at most 512 characters)")
	pos, err := parseWithArgs(fs, args, "<order_id>")
	if err != nil {
		return usage(err)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var body []byte
	if *reason != "" {
		if body, err = json.Marshal(map[string]string{"reason": *reason}); err != nil {
			return err
		}
	}
	a, err := cl.do(ctx, http.MethodPost, "/v1/orders/"+pos[0]+"/"+signal, nil, body, nil)
	if err != nil {
		return err
	}
	return printOrderAnswer(env.Stdout, a, c.json)
}
