package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// TestSentinelFailoverLosesNoAcknowledgedOrder runs the system behind
// Sentinels (one master, one replica, three Sentinels) with --durability
// replicas=1, and SIGKILLs the master while orders arrive and run. The
// Sentinels promote the replica; the killed master comes back (as a
// restarted pod would) and is made the new master's replica. Every order
// answered 202 exists and finishes, and the audit of the provider ledgers
// (kept on a Redis of their own, as real providers keep theirs) is clean:
// no acknowledged order and no effect's intent was lost, none applied
// twice. Clients retry 5xx answers with their Idempotency-Key, as API.md
// asks.
func TestSentinelFailoverLosesNoAcknowledgedOrder(t *testing.T) {
	t.Parallel()
	f := redistest.StartFailover(t, redistest.FailoverOptions{})
	ledgerRedis := redistest.New(t, redistest.BackendRedis)
	log := testLogger(t)
	ctx := context.Background()

	conn, err := server.RedisConfig{Sentinel: f.Spec(), PoolSize: 64}.Open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.Equal(t, server.TopologySentinel, conn.Topology())
	ledgerConn, err := server.OpenRedis(ledgerRedis.URL, 16)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ledgerConn.Close() })
	sim, err := server.StartSim(ledgerConn.Client, "127.0.0.1:0", providers.SimConfig{
		Payment: providers.Faults{Latency: 20 * time.Millisecond},
	}, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Shutdown(ctx) })

	durable := statemachine.Durability{Mode: statemachine.DurabilityReplicas, Replicas: 1}
	for range 2 {
		prov, err := providers.NewHTTP(sim.HTTPConfig())
		require.NoError(t, err)
		wc := server.WorkerConfig{
			Concurrency: 8, TaskCheckInterval: 10 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
			ShutdownTimeout: 3 * time.Second, Registry: fastOrderRegistry(), Logger: log,
		}
		wc.Engine.Lease = time.Second
		wc.Engine.ReaperInterval = 100 * time.Millisecond
		wc.Store.Durability = durable
		w, err := server.NewWorker(conn.Client, prov, wc, nil)
		require.NoError(t, err)
		require.NoError(t, w.Start())
		t.Cleanup(w.Shutdown)
	}
	ac := server.APIConfig{Listen: "127.0.0.1:0", Logger: log, Registry: fastOrderRegistry()}
	ac.Store.Durability = durable
	api, err := server.StartAPI(conn, ac, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = api.Shutdown(ctx) })

	// The load: orders sent at a steady pace, each retried with its key
	// until it is answered 202.
	const total = 120
	var mu sync.Mutex
	var accepted []string
	var refusals int
	ids := make(chan int)
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Second}
	for range 8 {
		wg.Go(func() {
			for i := range ids {
				id := fmt.Sprintf("failover-%d", i)
				body, _ := json.Marshal(order(id, fmt.Sprintf("cust-%d", i%7)))
				deadline := time.Now().Add(time.Minute)
				for time.Now().Before(deadline) {
					req, _ := http.NewRequest(http.MethodPost, api.URL()+"/v1/orders", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", "key-"+id)
					res, err := hc.Do(req)
					if err == nil {
						res.Body.Close()
						if res.StatusCode == http.StatusAccepted {
							mu.Lock()
							accepted = append(accepted, id)
							mu.Unlock()
							break
						}
					}
					mu.Lock()
					refusals++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	killed := make(chan string, 1)
	go func() {
		defer close(ids)
		for i := range total {
			if i == total/3 {
				// Kill the master with a third of the orders sent, the
				// first ones still running.
				old := f.Master.Addr()
				f.Master.Kill()
				killed <- old
			}
			ids <- i
			time.Sleep(40 * time.Millisecond)
		}
	}()
	old := <-killed
	start := time.Now()
	promoted, err := f.WaitPromoted(old, 30*time.Second)
	require.NoError(t, err)
	t.Logf("the Sentinels promoted %s %s after the master %s was killed", promoted, time.Since(start).Round(time.Millisecond), old)
	// The killed master comes back and the Sentinels make it a replica
	// of the new one, so that replicas=1 can be met again.
	require.NoError(t, f.Master.Restart())
	wg.Wait()
	require.Len(t, accepted, total, "every order is accepted in the end (%d refusals were retried)", refusals)

	// Every acknowledged order exists and finishes.
	store := statemachine.NewStore(conn.Client, statemachine.StoreConfig{})
	t.Cleanup(store.Close)
	waitFor(t, 90*time.Second, "every accepted order to finish", func() bool {
		for _, id := range accepted {
			in, err := store.Load(ctx, id)
			if err != nil || !in.Status.Terminal() {
				return false
			}
		}
		return true
	})
	for _, id := range accepted {
		in, err := store.Load(ctx, id)
		require.NoError(t, err)
		require.Equal(t, statemachine.StatusCompleted, in.Status, "order %s: %s, attempts %v, last error %q", id, in.State, in.Attempts, in.LastError)
		var o orders.Resource
		res, err := http.Get(api.URL() + "/v1/orders/" + id)
		require.NoError(t, err)
		require.NoError(t, json.NewDecoder(res.Body).Decode(&o))
		res.Body.Close()
		require.NotEmpty(t, o.TransactionID, "order %s", id)
	}
	rep, err := audit.Run(ctx, conn.Client, audit.Config{Ledger: providers.NewLedger(ledgerConn.Client)})
	require.NoError(t, err)
	require.True(t, rep.OK(), "audit violations: %v", rep.Violations)
	require.Equal(t, total, rep.Total())
	t.Logf("%d orders accepted (%d answers refused and retried during the failover), all completed; audit: %v", len(accepted), refusals, rep.Effects)
}
