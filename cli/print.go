package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// The tables the API commands print for people. Scripts use --json.

// printOrder prints an order as "field  value" lines, leaving out what is
// empty.
func printOrder(w io.Writer, o orders.Resource) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("order_id", o.OrderID)
	row("status", o.Status)
	row("state", o.State)
	row("workflow_version", fmt.Sprint(o.WorkflowVersion))
	row("priority", o.Priority)
	row("customer_id", o.CustomerID)
	row("amount", money(o.AmountCents, o.Currency))
	for i, it := range o.Items {
		row(fmt.Sprintf("item %d", i+1), fmt.Sprintf("%s × %d at %s", it.SKU, it.Qty, money(it.UnitPriceCents, o.Currency)))
	}
	for _, k := range slices.Sorted(maps.Keys(o.Metadata)) {
		row("metadata."+k, o.Metadata[k])
	}
	row("created_at", stamp(o.CreatedAt))
	row("updated_at", stamp(o.UpdatedAt))
	if o.Paused {
		row("paused", "yes: no new step starts until it is resumed")
	}
	if o.CancelRequested {
		row("cancel_requested", "yes: the cancel waits for the running step")
	}
	if o.DeadLetter != nil {
		row("dead_letter", o.DeadLetter.Step+": waits for an operator (POST .../retry or .../resolve)")
	}
	row("risk_decision", o.RiskDecision)
	if o.Review != nil {
		row("review", fmt.Sprintf("%s (deadline %s)", o.Review.Reason, stamp(o.Review.Deadline)))
	}
	row("warehouse", o.Warehouse)
	row("reservation_id", o.ReservationID)
	row("transaction_id", o.TransactionID)
	row("tracking_number", o.TrackingNumber)
	row("refund_id", o.RefundID)
	if p := o.Progress; p != nil {
		row("progress", strings.TrimSpace(fmt.Sprintf("%s %d%% %s", p.Step, p.Percent, p.Detail)))
	}
	if len(o.Attempts) > 0 {
		var parts []string
		for _, step := range slices.Sorted(maps.Keys(o.Attempts)) {
			parts = append(parts, fmt.Sprintf("%s=%d", step, o.Attempts[step]))
		}
		row("attempts", strings.Join(parts, " "))
	}
	row("last_error", o.LastError)
	return tw.Flush()
}

// printOrderList prints a page of orders, one line each, and how to get
// the next page.
func printOrderList(w io.Writer, os []orders.Resource, next string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER ID\tSTATUS\tSTATE\tAMOUNT\tCUSTOMER\tUPDATED\tNOTE")
	for _, o := range os {
		var notes []string
		if o.Paused {
			notes = append(notes, "paused")
		}
		if o.DeadLetter != nil {
			notes = append(notes, "dead letter: "+o.DeadLetter.Step)
		}
		if o.CancelRequested {
			notes = append(notes, "cancel requested")
		}
		if o.Review != nil {
			notes = append(notes, "in review until "+stamp(o.Review.Deadline))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.OrderID, o.Status, o.State, money(o.AmountCents, o.Currency),
			o.CustomerID, stamp(o.UpdatedAt), strings.Join(notes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(os) == 0 {
		fmt.Fprintln(w, "(no orders)")
	}
	if next != "" {
		fmt.Fprintf(w, "next page: --cursor %s\n", next)
	}
	return nil
}

// printHistory prints an order's history, one event a line.
func printHistory(w io.Writer, evs []statemachine.Event) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tEVENT")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", ev.Seq, stamp(ev.At), describeEvent(ev))
	}
	return tw.Flush()
}

// describeEvent says what a history event means, in one line.
func describeEvent(ev statemachine.Event) string {
	var s string
	switch ev.Type {
	case statemachine.EventCreated:
		s = "created in " + ev.To
	case statemachine.EventTransition:
		s = fmt.Sprintf("%s → %s (%s)", ev.From, ev.To, ev.Event)
	case statemachine.EventStepFailed:
		s = fmt.Sprintf("step %s attempt %d failed", ev.Step, ev.Attempt)
	case statemachine.EventSignal:
		s = "signal " + ev.Event
	case statemachine.EventDeadLettered:
		s = "step " + ev.Step + " dead-lettered: it waits for an operator"
	case statemachine.EventMigrated:
		s = fmt.Sprintf("migrated %s → %s", ev.From, ev.To)
	default:
		s = ev.Type
	}
	if ev.Type == statemachine.EventTransition && ev.Step != "" {
		s += " after step " + ev.Step
	}
	if ev.Error != "" {
		s += ": " + ev.Error
	}
	if (ev.Type == statemachine.EventSignal || ev.Type == statemachine.EventTransition) && len(ev.Detail) > 0 {
		s += " " + string(ev.Detail)
	}
	return s
}

// money prints an amount in cents of a currency: 4998 USD is "49.98 USD".
func money(cents int64, currency string) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

// stamp prints a time in UTC to the millisecond, or "" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}
