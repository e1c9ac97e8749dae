package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
)

// runProviders is `orderflow providers [list|pause|resume]`: the providers'
// flow-control state (GET /v1/providers), and an operator's pause and
// resume of every step that calls one (admin). An API without flow control
// answers 404: the command says it is not available.
func runProviders(ctx context.Context, env *Env, args []string) error {
	action := "list"
	if len(args) > 0 && (args[0] == "list" || args[0] == "pause" || args[0] == "resume") {
		action, args = args[0], args[1:]
	}
	var c clientFlags
	name := "providers"
	if action != "list" {
		name += " " + action + " <provider>"
	}
	fs := newFlagSet(name, "The providers' flow control: list their state (orderflow providers [list]), or pause or resume every step that calls one "+
		"(orderflow providers pause|resume <provider>; admin).", env.Stderr)
	c.register(fs)
	var reason *string
	names := []string{}
	if action != "list" {
		reason = fs.String("reason", "", "why, kept in the logs")
		names = []string{"<provider>"}
	}
	pos, err := parseWithArgs(fs, args, names...)
	if err != nil {
		return usage(err)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var a *apiAnswer
	if action == "list" {
		a, err = cl.do(ctx, http.MethodGet, "/v1/providers", nil, nil, nil)
	} else {
		var body []byte
		if *reason != "" {
			body, _ = json.Marshal(map[string]string{"reason": *reason})
		}
		a, err = cl.do(ctx, http.MethodPost, "/v1/providers/"+pos[0]+"/"+action, nil, body, nil)
	}
	if isStatus(err, http.StatusNotFound) && action == "list" {
		_, err := fmt.Fprintln(env.Stdout, "flow control: not available (this API has no GET /v1/providers)")
		return err
	}
	if err != nil {
		return err
	}
	if c.json {
		_, err := fmt.Fprintln(env.Stdout, strings.TrimSpace(string(a.body)))
		return err
	}
	var list struct {
		Providers []providerState `json:"providers"`
	}
	if action == "list" {
		err = json.Unmarshal(a.body, &list)
	} else {
		var p providerState
		err = json.Unmarshal(a.body, &p)
		list.Providers = append(list.Providers, p)
	}
	if err != nil {
		return errors.New("the answer is not what the API sends: " + err.Error())
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tSTATE\tRATE LIMIT\tIN FLIGHT\tERROR RATE\tOPENED AT")
	for _, p := range list.Providers {
		rps := "none"
		if p.RateLimitRPS > 0 {
			rps = fmt.Sprintf("%g/s", p.RateLimitRPS)
		}
		opened := cmp.Or(p.OpenedAt, "-")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f%%\t%s\n", p.Name, p.State, rps, p.InFlight, 100*p.ErrorRate, opened)
	}
	return tw.Flush()
}

// providerState is a provider as GET /v1/providers shows it (API.md).
type providerState struct {
	Name         string  `json:"name"`
	State        string  `json:"state"`
	RateLimitRPS float64 `json:"rate_limit_rps"`
	InFlight     int     `json:"in_flight"`
	ErrorRate    float64 `json:"error_rate"`
	// OpenedAt is empty (null) unless the circuit is open or half-open.
	OpenedAt string `json:"opened_at"`
}
