// Package e2e holds the end-to-end suite: the API, a worker and the provider
// simulators talking over HTTP, against miniredis and against a real
// redis-server, plus the tests that run orderflow as real processes.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// testBundle is one running system: Redis, simulators, a worker and the API.
type testBundle struct {
	redis  *redistest.Instance
	conn   *server.RedisConn
	sim    *server.SimProcess
	worker *server.Worker
	api    *server.APIProcess
	ledger *providers.Ledger
	store  *statemachine.Store
}

// options tune a bundle.
type options struct {
	sim       providers.SimConfig
	timeout   time.Duration // provider call timeout
	noWorker  bool
	retention time.Duration // how long finished orders are kept; 0: the default
	// version is the workflow version new orders take (0: 1), and v2
	// configures version 2.
	version int
	v2      statemachine.OrderV2Options
	// apiRegistry, when set, is the API's registry (a test may change its
	// default version while orders run).
	apiRegistry *statemachine.Registry
	// Worker settings; zero values keep the harness's defaults.
	flow        flowcontrol.Config
	queues      map[string]int
	concurrency int
	// workerRegistry, when set, replaces the worker's fast registry.
	workerRegistry *statemachine.Registry
	// wrap, when set, wraps the worker's providers (to see what it calls).
	wrap func(providers.Set) providers.Set
	// createHook is the API store's CreateHook; pickupGrace, when set, is
	// the API's pickup deadline for new orders.
	createHook  func(statemachine.CreateStep) error
	pickupGrace time.Duration
}

// withCluster are the backends of the core order flows: the conformance
// backends and a 3-master Redis Cluster.
var withCluster = append(slices.Clone(redistest.Backends), redistest.BackendCluster)

// redisConfig is how the processes of a test reach r: its URL, or its
// cluster's seeds.
func redisConfig(r *redistest.Instance, poolSize int) server.RedisConfig {
	if r.Cluster != nil {
		return server.RedisConfig{Cluster: r.Cluster.Seeds(), PoolSize: poolSize}
	}
	return server.RedisConfig{URL: r.URL, PoolSize: poolSize}
}

// registry is the bundle's registry of workflow versions.
func (o options) registry() *statemachine.Registry { return fastRegistry(o.version, o.v2) }

// fastOrderRegistry is OrderV1 with short backoffs, so retry paths finish in
// well under a second.
func fastOrderRegistry() *statemachine.Registry {
	return fastRegistry(1, statemachine.OrderV2Options{})
}

// fastRegistry holds both versions of the order workflow with short
// backoffs, new orders taking version; o configures version 2.
func fastRegistry(version int, o statemachine.OrderV2Options) *statemachine.Registry {
	r := statemachine.NewRegistry()
	for _, d := range []*statemachine.Definition{statemachine.OrderV1(), statemachine.OrderV2(o)} {
		for i := range d.States {
			p := &d.States[i].Retry
			p.InitialInterval, p.MaxInterval = 20*time.Millisecond, 100*time.Millisecond
		}
		r.MustRegister(d)
	}
	if err := r.SetDefault(statemachine.OrderWorkflow, max(version, 1)); err != nil {
		panic(err)
	}
	return r
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("E2E_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// setup starts a whole system on r.
func setup(t *testing.T, r *redistest.Instance, o options) *testBundle {
	t.Helper()
	log := testLogger(t)
	conn, err := redisConfig(r, 64).Open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	b := &testBundle{redis: r, conn: conn, ledger: providers.NewLedger(conn.Client)}
	b.store = statemachine.NewStore(conn.Client, statemachine.StoreConfig{})
	t.Cleanup(b.store.Close)

	b.sim, err = server.StartSim(conn.Client, "127.0.0.1:0", o.sim, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.sim.Shutdown(context.Background()) })

	if !o.noWorker {
		b.startWorker(t, o)
	}
	ac := server.APIConfig{Listen: "127.0.0.1:0", Logger: log, Registry: cmp.Or(o.apiRegistry, o.registry())}
	ac.Store.Retention = o.retention
	ac.Store.CreateHook = o.createHook
	ac.Engine.PickupGrace = o.pickupGrace
	b.api, err = server.StartAPI(conn, ac, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.api.Shutdown(context.Background()) })
	return b
}

func (b *testBundle) startWorker(t *testing.T, o options) *server.Worker {
	t.Helper()
	pc := b.sim.HTTPConfig()
	pc.Timeout = o.timeout
	if pc.Timeout == 0 {
		pc.Timeout = 2 * time.Second
	}
	prov, err := providers.NewHTTP(pc)
	require.NoError(t, err)
	if o.wrap != nil {
		prov = o.wrap(prov)
	}
	wc := server.WorkerConfig{
		Concurrency: cmp.Or(o.concurrency, 8), TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout: 3 * time.Second, Registry: cmp.Or(o.workerRegistry, o.registry()), Logger: testLogger(t),
		Activities: orders.Options{ShipmentPoll: 20 * time.Millisecond},
		Queues:     o.queues, Flow: o.flow,
	}
	wc.Engine.Lease = time.Second
	wc.Engine.ReaperInterval = 100 * time.Millisecond
	wc.Store.Retention = o.retention
	w, err := server.NewWorker(b.conn.Client, prov, wc, nil)
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	if b.worker == nil {
		b.worker = w
	}
	return w
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

func (b *testBundle) do(t testing.TB, method, path string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.api.URL()+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: raw}
}

// order returns a valid order request.
func order(id, customer string) orders.Request {
	return orders.Request{
		OrderID: id, CustomerID: customer, Currency: "USD",
		Items: []orders.Item{{SKU: "SKU-ABC", Qty: 2, UnitPriceCents: 2499}},
	}
}

func (b *testBundle) post(t testing.TB, req orders.Request) orders.Resource {
	t.Helper()
	res := b.do(t, http.MethodPost, "/v1/orders", req)
	require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
	var o orders.Resource
	res.json(t, &o)
	return o
}

func (b *testBundle) get(t testing.TB, id string) orders.Resource {
	t.Helper()
	res := b.do(t, http.MethodGet, "/v1/orders/"+id, nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	var o orders.Resource
	res.json(t, &o)
	return o
}

func (b *testBundle) history(t testing.TB, id string) []statemachine.Event {
	t.Helper()
	res := b.do(t, http.MethodGet, "/v1/orders/"+id+"/history", nil)
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	var h struct {
		Events []statemachine.Event `json:"events"`
	}
	res.json(t, &h)
	return h.Events
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState waits until the order is in one of states and returns it.
func (b *testBundle) waitState(t testing.TB, id string, within time.Duration, states ...string) orders.Resource {
	t.Helper()
	var o orders.Resource
	deadline := time.Now().Add(within)
	for {
		o = b.get(t, id)
		for _, s := range states {
			if o.State == s {
				return o
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for order %s to reach %v; it is %s (attempts %v, last error %q)",
				within, id, states, o.State, o.Attempts, o.LastError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// effects counts an order's ledger entries by operation.
func (b *testBundle) effects(t testing.TB, id string) map[string]int {
	t.Helper()
	entries, err := b.ledger.ForOrder(context.Background(), id)
	require.NoError(t, err)
	n := map[string]int{}
	for _, e := range entries {
		n[e.Op]++
	}
	return n
}

// requireEffects asserts the exact ledger of an order.
func (b *testBundle) requireEffects(t testing.TB, id string, want map[string]int) {
	t.Helper()
	got := b.effects(t, id)
	for op := range got {
		if _, ok := want[op]; !ok {
			want[op] = 0
		}
	}
	for op := range want {
		if _, ok := got[op]; !ok {
			got[op] = 0
		}
	}
	require.Equal(t, want, got, "ledger of %s", id)
}

// client returns a raw Redis client of the bundle.
func (b *testBundle) client() redis.UniversalClient { return b.conn.Client }
