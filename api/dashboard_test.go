package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// statsBody is the body of GET /v1/stats.
type statsBody struct {
	At         time.Time      `json:"at"`
	Total      int            `json:"total"`
	Counted    int            `json:"counted"`
	Complete   bool           `json:"complete"`
	ByStatus   map[string]int `json:"by_status"`
	ByState    map[string]int `json:"by_state"`
	ByVersion  map[string]int `json:"by_version"`
	ByPriority map[string]int `json:"by_priority"`
	Throughput struct {
		BucketSeconds int       `json:"bucket_seconds"`
		Since         time.Time `json:"since"`
		Created       []int     `json:"created"`
		Finished      []int     `json:"finished"`
	} `json:"throughput"`
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func TestStats(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("s-1")))
		b.create(orderBody(withID("s-2"), with("priority", "high")))
		b.create(orderBody(withID("s-3")))
		b.drive("s-1", "start", "reserved")
		require.Equal(t, http.StatusAccepted, b.cancel("s-3").Code)

		st := decode[statsBody](t, b.get("/v1/stats"), http.StatusOK)
		require.Equal(t, 3, st.Total)
		require.Equal(t, 3, st.Counted)
		require.True(t, st.Complete)
		require.Equal(t, map[string]int{"running": 2, "cancelled": 1}, st.ByStatus)
		require.Equal(t, map[string]int{"charging": 1, "pending": 1, "cancelled": 1}, st.ByState)
		require.Equal(t, map[string]int{"1": 3}, st.ByVersion)
		require.Equal(t, map[string]int{"normal": 2, "high": 1}, st.ByPriority)
		require.Equal(t, 20, st.Throughput.BucketSeconds)
		require.Len(t, st.Throughput.Created, 30)
		require.Len(t, st.Throughput.Finished, 30)
		require.Equal(t, 3, sum(st.Throughput.Created), "created in the last minutes")
		require.Equal(t, 1, sum(st.Throughput.Finished), "the cancelled order finished")
		require.Equal(t, 3, st.Throughput.Created[29], "just now: the last bucket")

		b.create(orderBody(withID("s-4")))
		again := decode[statsBody](t, b.get("/v1/stats"), http.StatusOK)
		require.Equal(t, st.At, again.At, "one count serves every caller for a while")
		require.Equal(t, 3, again.Counted)
	})
}

// workflowsBody is the body of GET /v1/workflows.
type workflowsBody struct {
	Workflows []struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
		Default bool   `json:"default"`
		Initial string `json:"initial"`
		States  []struct {
			Name     string   `json:"name"`
			Terminal bool     `json:"terminal"`
			Signals  []string `json:"signals"`
		} `json:"states"`
		Transitions []struct{ Event, From, To string } `json:"transitions"`
	} `json:"workflows"`
}

func TestWorkflows(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	wf := decode[workflowsBody](t, b.get("/v1/workflows"), http.StatusOK)
	require.Len(t, wf.Workflows, 2)
	signals := map[string][]string{}
	for _, w := range wf.Workflows {
		require.Equal(t, "order", w.Name)
		require.Equal(t, w.Version == 1, w.Default, "new orders take version 1")
		require.Equal(t, "pending", w.Initial)
		require.NotEmpty(t, w.Transitions)
		for _, s := range w.States {
			signals[s.Name+"@"+string(rune('0'+w.Version))] = s.Signals
			if s.Terminal {
				require.Empty(t, s.Signals, s.Name)
			}
		}
	}
	require.Equal(t, []string{"cancel", "pause", "resume"}, signals["pending@1"])
	require.Equal(t, []string{"pause", "resume"}, signals["shipping@1"], "past the point of no return")
	require.Equal(t, []string{"approve", "cancel", "reject", "pause", "resume"}, signals["in_review@2"])
	require.Equal(t, []string{"pause", "resume"}, signals["refunding@2"])
}

// svgDoc is a drawing as the tests read it: the classes and data
// attributes of its elements.
type svgDoc struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []svgDoc   `xml:",any"`
}

func (n svgDoc) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// marked returns "state" or "from>to" for each element of class c.
func (n svgDoc) marked(c string) []string {
	var out []string
	if slices.Contains(strings.Fields(n.attr("class")), c) {
		if s := n.attr("data-state"); s != "" {
			out = append(out, s)
		} else {
			out = append(out, n.attr("data-from")+">"+n.attr("data-to"))
		}
	}
	for _, c2 := range n.Nodes {
		out = append(out, c2.marked(c)...)
	}
	return out
}

// diagram reads a drawing and requires it to be SVG.
func (b *testBundle) diagram(path string) svgDoc {
	b.t.Helper()
	res := b.get(path)
	require.Equal(b.t, http.StatusOK, res.Code, "body: %s", res.Body)
	require.Equal(b.t, "image/svg+xml", res.Header.Get("Content-Type"))
	var d svgDoc
	require.NoError(b.t, xml.Unmarshal(res.Body, &d))
	require.Equal(b.t, "svg", d.XMLName.Local)
	return d
}

func TestDiagram(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	d := b.diagram("/v1/workflows/order/1/diagram")
	require.Len(t, d.marked(statemachine.ClassState), 9)
	require.Empty(t, d.marked(statemachine.ClassCurrent))

	b.create(orderBody(withID("d-1")))
	b.drive("d-1", "start", "reserved")
	d = b.diagram("/v1/workflows/order/1/diagram?order_id=d-1")
	require.Equal(t, []string{"charging"}, d.marked(statemachine.ClassCurrent))
	require.ElementsMatch(t, []string{"pending>reserving", "reserving>charging"}, d.marked(statemachine.ClassTaken))
	require.ElementsMatch(t, []string{"pending", "reserving", "charging"}, d.marked(statemachine.ClassVisited))

	b.create(orderBody(withID("d-2")))
	require.Equal(t, http.StatusAccepted, b.cancel("d-2").Code)
	d = b.diagram("/v1/workflows/order/1/diagram?order_id=d-2")
	require.Equal(t, []string{"cancelled"}, d.marked(statemachine.ClassCurrent))
	require.Equal(t, []string{"pending>cancelled"}, d.marked(statemachine.ClassTaken))

	requireProblem(t, b.get("/v1/workflows/order/9/diagram"), http.StatusNotFound)
	requireProblem(t, b.get("/v1/workflows/loan/1/diagram"), http.StatusNotFound)
	requireValidation(t, b.get("/v1/workflows/order/x/diagram"), "version")
	requireValidation(t, b.get("/v1/workflows/order/1/diagram?order_id=a!b"), "order_id")
	requireProblem(t, b.get("/v1/workflows/order/1/diagram?order_id=nope"), http.StatusNotFound)
	requireProblem(t, b.get("/v1/workflows/order/2/diagram?order_id=d-1"), http.StatusConflict)
}

func TestListFiltersOfTheDashboard(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	b.create(orderBody(withID("f-1"), with("customer_id", "cust-a")))
	b.create(orderBody(withID("f-2"), with("customer_id", "cust-b"), with("priority", "high")))
	b.create(orderBody(withID("f-3"), with("customer_id", "cust-a"), with("priority", "low")))

	require.Equal(t, []string{"f-3", "f-1"}, b.listIDs("customer_id=cust-a"))
	require.Equal(t, []string{"f-2"}, b.listIDs("priority=high"))
	require.Equal(t, []string{"f-1"}, b.listIDs("priority=normal&customer_id=cust-a"))
	require.Equal(t, []string{"f-3", "f-2", "f-1"}, b.listIDs("version=1"))
	require.Empty(t, b.listIDs("version=2"))
	requireValidation(t, b.get("/v1/orders?version=0"), "version")
	requireValidation(t, b.get("/v1/orders?version=v1"), "version")
	requireValidation(t, b.get("/v1/orders?priority=urgent"), "priority")
	requireValidation(t, b.get("/v1/orders?customer_id="+strings.Repeat("c", 129)), "customer_id")
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// openEvents opens GET /v1/events?query on srv and returns its events as
// they come; the stream closes at the end of the test.
func openEvents(t *testing.T, srv *httptest.Server, query string, headers ...string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events?"+query, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	out := make(chan sseEvent, 100)
	if res.StatusCode != http.StatusOK {
		close(out)
		return out, res
	}
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	go func() {
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out, res
}

// nextOrder waits for the next "order" event that satisfies ok.
func nextOrder(t *testing.T, events <-chan sseEvent, ok func(orders.Resource) bool) orders.Resource {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, open := <-events:
			require.True(t, open, "the stream ended")
			if ev.name != "order" {
				continue
			}
			var o orders.Resource
			require.NoError(t, json.Unmarshal([]byte(ev.data), &o))
			if ok(o) {
				return o
			}
		case <-timeout:
			t.Fatal("no such order event within 10s")
		}
	}
}

// hello waits for the stream's first event, which must be "hello".
func hello(t *testing.T, events <-chan sseEvent) {
	t.Helper()
	select {
	case ev := <-events:
		require.Equal(t, "hello", ev.name)
	case <-time.After(10 * time.Second):
		t.Fatal("no hello")
	}
}

func TestEventsStreamOrderChanges(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	srv := httptest.NewServer(b.h)
	t.Cleanup(srv.Close)
	b.create(orderBody(withID("e-old")))

	recent, _ := openEvents(t, srv, "")
	hello(t, recent)
	one, _ := openEvents(t, srv, "order_id=e-old")
	hello(t, one)

	// A new order, then a change to an old one.
	b.create(orderBody(withID("e-new")))
	o := nextOrder(t, recent, func(o orders.Resource) bool { return o.OrderID == "e-new" })
	require.Equal(t, "pending", o.State)
	require.Equal(t, http.StatusAccepted, b.cancel("e-old").Code)
	o = nextOrder(t, recent, func(o orders.Resource) bool { return o.OrderID == "e-old" })
	require.Equal(t, "cancelled", o.Status)
	o = nextOrder(t, one, func(o orders.Resource) bool { return true })
	require.Equal(t, "e-old", o.OrderID, "a stream of one order sees only it")
	require.Equal(t, "cancelled", o.Status)

	// A heartbeat's progress is a change too.
	b.create(orderBody(withID("e-long")))
	in, err := b.store.Claim(context.Background(), "e-long", "w", time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.NotNil(t, in)
	ok, err := b.store.Heartbeat(context.Background(), "e-long", "w", time.Now().Add(time.Minute), `{"step":"ship","percent":40,"at":"2026-01-01T00:00:00Z"}`, nil)
	require.NoError(t, err)
	require.True(t, ok)
	o = nextOrder(t, recent, func(o orders.Resource) bool { return o.OrderID == "e-long" && o.Progress != nil })
	require.Equal(t, 40, o.Progress.Percent)
}

func TestEventsEndWhenTheServerCloses(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	srv := httptest.NewServer(b.h)
	t.Cleanup(srv.Close)
	events, res := openEvents(t, srv, "")
	hello(t, events)
	b.srv.CloseStreams()
	for range events {
		// Drain until the stream ends.
	}
	_, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	_, res = openEvents(t, srv, "")
	requireRetryAfter(t, &response{Header: res.Header})
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "no new stream once closed")
}

func TestEventsValidation(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	requireValidation(t, b.get("/v1/events?order_id=a!b"), "order_id")
	requireValidation(t, b.get("/v1/events?recent=maybe"), "recent")
	requireValidation(t, b.get("/v1/events?order_id="+strings.Repeat("a&order_id=a", 101)), "order_id")
}

func TestDashboardAuth(t *testing.T) {
	t.Parallel()
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("page " + r.URL.Path)) })
	cfg := api.Config{Tokens: testTokens}
	b := setupConfig(t, redistest.New(t, redistest.BackendMiniredis).Client(t), cfg, api.Deps{UI: ui})

	for _, path := range []string{"/ui", "/ui/", "/ui/js/app.js"} {
		res := b.get(path)
		require.Equal(t, http.StatusOK, res.Code, "the pages hold no data: no token needed for %s", path)
		require.Equal(t, "page "+path, string(res.Body))
	}
	requireUnauthorized(t, b.get("/v1/stats"))
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/stats", "", bearer(reader)...).Code)

	srv := httptest.NewServer(b.h)
	t.Cleanup(srv.Close)
	_, res := openEvents(t, srv, "")
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	_, res = openEvents(t, srv, "", bearer(writer)...)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	events, res := openEvents(t, srv, "", bearer(reader)...)
	require.Equal(t, http.StatusOK, res.StatusCode)
	hello(t, events)
}
