package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// system is `orderflow dev` (API, worker, simulators, embedded miniredis)
// in the test's process, with workflow version 2 for new orders: the risk
// agent sends cust-review to a human, and shipments take long enough to
// watch their progress.
type system struct {
	t     *testing.T
	dev   *server.Dev
	token string
}

func startSystem(t *testing.T, tokens ...api.Token) *system {
	t.Helper()
	reg, err := statemachine.OrderRegistry(statemachine.OrderV2Options{}, 2)
	require.NoError(t, err)
	cfg := server.DevConfig{
		Logger: slog.New(slog.DiscardHandler),
		Sim: providers.SimConfig{
			Risk:     providers.Faults{ReviewCustomers: []string{"cust-review"}},
			Shipping: providers.Faults{ShipmentDuration: 10 * time.Second},
		},
	}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.API.Tokens = tokens
	cfg.Worker.ShutdownTimeout = time.Second
	cfg.Worker.Registry = reg
	cfg.Worker.Flow = flowcontrol.Config{Gate: true} // a pause holds the workers
	d, err := server.StartDev(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, d.Shutdown(ctx))
	})
	s := &system{t: t, dev: d}
	if len(tokens) > 0 {
		s.token = tokens[0].Secret
	}
	return s
}

// call sends a request to the API and decodes its answer into an order.
func (s *system) call(method, path, body string) (int, orders.Resource) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.dev.APIURL()+path, strings.NewReader(body))
	require.NoError(s.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	var o orders.Resource
	if res.StatusCode < 300 {
		require.NoError(s.t, json.Unmarshal(b, &o), "%s %s: %s", method, path, b)
	}
	return res.StatusCode, o
}

// providerState returns a provider's state from GET /v1/providers.
func (s *system) providerState(name string) string {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.dev.APIURL()+"/v1/providers", nil)
	require.NoError(s.t, err)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	var list struct {
		Providers []struct{ Name, State string }
	}
	require.NoError(s.t, json.NewDecoder(res.Body).Decode(&list))
	for _, p := range list.Providers {
		if p.Name == name {
			return p.State
		}
	}
	s.t.Fatalf("no provider %q in %+v", name, list)
	return ""
}

// create places an order of amount cents.
func (s *system) create(id, customer, priority string, cents int) {
	s.t.Helper()
	code, _ := s.call(http.MethodPost, "/v1/orders", fmt.Sprintf(
		`{"order_id":%q,"customer_id":%q,"priority":%q,"currency":"USD","items":[{"sku":"SKU-UI","qty":1,"unit_price_cents":%d}]}`,
		id, customer, priority, cents))
	require.Equal(s.t, http.StatusAccepted, code)
}

// waitOrder polls the order until ok says yes.
func (s *system) waitOrder(id string, ok func(orders.Resource) bool) orders.Resource {
	s.t.Helper()
	var o orders.Resource
	require.Eventually(s.t, func() bool {
		var code int
		code, o = s.call(http.MethodGet, "/v1/orders/"+id, "")
		return code == http.StatusOK && ok(o)
	}, 20*time.Second, 50*time.Millisecond, "order %s: last seen %+v", id, o)
	return o
}

// The dashboard in a real browser: the list with its counts and its rows
// changing live, an order's progress bar following its heartbeats, an
// order waiting for review with its timeline, its path highlighted on the
// workflow diagram and the signals its state takes, a pause sent from
// elsewhere showing up live, a cancel pressed in the page, and the
// providers page; with no error in the console and no reload.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, 3*time.Minute)
	s := startSystem(t)
	s.create("ui-review", "cust-review", "normal", 1999)
	s.create("ui-ship", "cust-ship", "high", 2999)
	s.waitOrder("ui-review", func(o orders.Resource) bool { return o.State == statemachine.OrderInReview })
	s.waitOrder("ui-ship", func(o orders.Resource) bool { return o.Progress != nil })

	// The list.
	b.do("open the list", chromedp.Navigate(s.dev.APIURL()+"/ui/#/orders"))
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	b.waitFor("rows", `!!document.querySelector('tr[data-order-id="ui-review"]') && !!document.querySelector('tr[data-order-id="ui-ship"]')`)
	b.waitFor("counts per state", `!!document.querySelector('.chips[data-group=state] .chip[data-state=in_review]') &&
		!!document.querySelector('.chips[data-group=state] .chip[data-state=shipping]')`)
	b.waitFor("the sparkline", `document.querySelectorAll('svg.sparkline polyline').length === 2`)
	b.waitFor("live", `document.getElementById('live').dataset.state === 'live'`)
	require.Equal(t, "1", b.text(`.chips[data-group=priority] .chip[data-priority=high] b`))
	b.screenshot("orders")

	// A new order appears, and moves on, without a reload.
	s.create("ui-live", "cust-live", "low", 999)
	b.waitFor("the new order's row", `!!document.querySelector('tr[data-order-id="ui-live"]')`)
	b.waitFor("the new order moving on", `document.querySelector('tr[data-order-id="ui-live"]').dataset.state === 'shipping'`)

	// Filters: a state's count filters the list.
	b.click("filter by state", `.chips[data-group=state] .chip[data-state=in_review]`)
	b.waitFor("only in_review", `location.hash.includes('state=in_review') && document.querySelectorAll('tbody tr').length === 1 &&
		!!document.querySelector('tr[data-order-id="ui-review"]')`)
	b.click("clear the filters", `.filters .clear`)
	b.waitFor("filters cleared", `document.querySelectorAll('tbody tr').length === 3`)

	// A long step's progress bar follows its heartbeats.
	s.create("ui-track", "cust-track", "normal", 4999)
	s.waitOrder("ui-track", func(o orders.Resource) bool { return o.Progress != nil })
	b.click("open the shipping order", `a[href="#/orders/ui-track"]`)
	b.waitFor("progress bar", `!!document.querySelector('.progress-card [role=progressbar]')`)
	first := eval[int](b, `Number(document.querySelector('.progress-card [role=progressbar]').getAttribute('aria-valuenow'))`)
	b.waitFor("progress moving", fmt.Sprintf(`Number(document.querySelector('.progress-card [role=progressbar]').getAttribute('aria-valuenow')) > %d`, first))
	b.waitFor("current state on the diagram", `!!document.querySelector('.diagram svg .state.current[data-state=shipping]')`)
	b.screenshot("order-shipping")

	// The order in review: state, deadline, timeline and path.
	b.click("back to the list", `.crumbs a`)
	b.click("open the order in review", `a[href="#/orders/ui-review"]`)
	b.waitFor("its state", `!!document.querySelector('.current-state[data-state=in_review]')`)
	b.waitFor("its review deadline", `/^in \d+h/.test(document.querySelector('.review-card .countdown').textContent)`)
	b.waitFor("its timeline", `document.querySelectorAll('.timeline li').length >= 3 &&
		document.querySelectorAll('.timeline li[data-type=transition]').length === 2`)
	b.waitFor("its path on the diagram", `!!document.querySelector('.diagram svg .state.current[data-state=in_review]')`)
	taken := eval[[]string](b, `[...document.querySelectorAll('.diagram svg .edge.taken')].map(e => e.dataset.from + '>' + e.dataset.to).sort()`)
	require.Equal(t, []string{"assessing>in_review", "pending>assessing"}, taken)
	visited := eval[[]string](b, `[...document.querySelectorAll('.diagram svg .state.visited')].map(e => e.dataset.state).sort()`)
	require.Equal(t, []string{"assessing", "in_review", "pending"}, visited)
	require.Equal(t, []string{"approve", "reject", "pause", "cancel"}, b.signals())
	b.screenshot("order-review")

	// A pause sent elsewhere shows up live; resume is pressed here.
	code, _ := s.call(http.MethodPost, "/v1/orders/ui-review/pause", "")
	require.Equal(t, http.StatusAccepted, code)
	b.waitFor("paused", `!!document.querySelector('.head-badges .badge.paused') && !!document.querySelector('button[data-signal=resume]')`)
	require.Equal(t, []string{"approve", "reject", "resume", "cancel"}, b.signals())
	b.click("resume", `button[data-signal=resume]`)
	b.waitFor("resumed", `!document.querySelector('.head-badges .badge.paused') && !!document.querySelector('button[data-signal=pause]')`)
	s.waitOrder("ui-review", func(o orders.Resource) bool { return !o.Paused })

	// Cancel, with a reason.
	b.do("give a reason", chromedp.SendKeys(chromedp.CSS(`input.reason`), "customer called"))
	b.click("cancel", `button[data-signal=cancel]`)
	b.waitFor("cancelled", `!!document.querySelector('.current-state[data-state=cancelled]') && !!document.querySelector('.head-badges .status-cancelled')`)
	b.waitFor("the diagram follows", `!!document.querySelector('.diagram svg .state.current[data-state=cancelled]') &&
		!!document.querySelector('.diagram svg .edge.taken[data-from=in_review][data-to=cancelled]')`)
	b.waitFor("the reason in the timeline", `[...document.querySelectorAll('.ev-reason')].some(e => e.textContent.includes('customer called'))`)
	require.Empty(t, b.signals(), "a cancelled order takes no signal")
	o := s.waitOrder("ui-review", func(o orders.Resource) bool { return o.Status == "cancelled" })
	require.Equal(t, statemachine.OrderCancelled, o.State)
	b.screenshot("order-cancelled")

	// Providers: each one's flow control; pause one with its button, see it
	// paused live (and in the API), resume it.
	b.click("open providers", `a[data-nav=providers]`)
	b.waitFor("providers", `!!document.querySelector('table.providers-table tr[data-provider=payment][data-state=closed]')`)
	b.screenshot("providers")
	b.click("pause payment", `tr[data-provider=payment][data-state=closed] button`)
	b.waitFor("payment paused", `!!document.querySelector('tr[data-provider=payment][data-state=paused]')`)
	require.Equal(t, "paused", s.providerState("payment"))
	b.screenshot("provider-paused")
	b.click("resume payment", `tr[data-provider=payment][data-state=paused] button`)
	b.waitFor("payment resumed", `!!document.querySelector('tr[data-provider=payment][data-state=closed]')`)
	require.Equal(t, "closed", s.providerState("payment"))

	require.True(t, eval[bool](b, `window.sameDocument === true`), "the page never reloaded")
	b.requireCleanConsole(regexp.MustCompile(`/v1/providers`))
}

// signals returns the signal buttons the order page shows, in order.
func (b *browser) signals() []string {
	b.t.Helper()
	return eval[[]string](b, `[...document.querySelectorAll('.actions button[data-signal]')].map(e => e.dataset.signal)`)
}

// With tokens on, the dashboard asks for one, keeps it in the tab's
// sessionStorage (no cookie), and sends it with every call, reads and
// signals alike.
func TestDashboardAsksForAToken(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, 2*time.Minute)
	tok := api.Token{Name: "ui", Secret: "ui-secret-0123456789abcdef", Scopes: []api.Scope{api.ScopeOrdersRead, api.ScopeOrdersWrite}}
	s := startSystem(t, tok)
	s.create("ui-auth", "cust-review", "normal", 1999)
	s.waitOrder("ui-auth", func(o orders.Resource) bool { return o.State == statemachine.OrderInReview })

	b.do("open the list", chromedp.Navigate(s.dev.APIURL()+"/ui/"))
	b.waitFor("the token dialog", `document.getElementById('token-dialog').open`)
	b.screenshot("token")
	b.do("give the token",
		chromedp.SendKeys(chromedp.CSS(`#token-input`), tok.Secret),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))
	b.waitFor("rows", `!!document.querySelector('tr[data-order-id="ui-auth"]')`)
	b.waitFor("live", `document.getElementById('live').dataset.state === 'live'`)
	require.Equal(t, tok.Secret, eval[string](b, `sessionStorage.getItem('orderflow.token')`))
	require.Empty(t, eval[string](b, `document.cookie`))

	b.click("open the order", `a[href="#/orders/ui-auth"]`)
	b.click("reject", `button[data-signal=reject]`)
	b.waitFor("rejected", `!!document.querySelector('.current-state[data-state=failed]')`)
	s.waitOrder("ui-auth", func(o orders.Resource) bool { return o.Status == "failed" })

	b.requireCleanConsole(regexp.MustCompile(`status of 401`))
}
