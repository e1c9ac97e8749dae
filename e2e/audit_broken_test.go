package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// A test is only as strong as the fake it runs against. These run the real
// system against deliberately broken providers and show that each audit
// rule catches what it is there for; the chaos harness relies on them.

// runAudit audits the bundle's Redis and returns the rules that fired, with
// how often.
func runAudit(t *testing.T, b *testBundle, maxRunning time.Duration) map[string]int {
	t.Helper()
	rep, err := audit.Run(context.Background(), b.client(), audit.Config{MaxRunning: maxRunning})
	require.NoError(t, err)
	fired := map[string]int{}
	for _, v := range rep.Violations {
		fired[v.Rule]++
	}
	return fired
}

func TestAuditCatchesABrokenProvider(t *testing.T) {
	t.Parallel()
	// Each case breaks one promise through the providers; the audit of a
	// healthy run (TestChaosSmall, and the clean check below) is empty.
	for _, tc := range []struct {
		name string
		sim  providers.SimConfig
		run  func(t *testing.T, b *testBundle)
		want string
	}{{
		// A provider that forgets its keys applies a retried charge again.
		name: "ignore-keys", want: audit.RuleDoubleKey,
		sim: providers.SimConfig{Payment: providers.Faults{Broken: []string{providers.BrokenIgnoreKeys}, TimeoutRate: 1, TimeoutHold: time.Second}},
		run: func(t *testing.T, b *testBundle) {
			b.post(t, order("broken-keys", "cust-1"))
			waitFor(t, settle, "a retried charge", func() bool { return b.effects(t, "broken-keys")["charge"] >= 2 })
			require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderPayment, providers.Faults{Broken: []string{providers.BrokenIgnoreKeys}}))
			b.waitState(t, "broken-keys", settle, statemachine.OrderCompleted)
		},
	}, {
		// A provider that charges although it answers "declined": the order
		// fails, and nothing refunds a charge it was told never happened.
		name: "apply-declines", want: audit.RuleCompensated,
		sim: providers.SimConfig{Payment: providers.Faults{Broken: []string{providers.BrokenApplyDeclines}, DeclineCustomers: []string{"broke"}}},
		run: func(t *testing.T, b *testBundle) {
			b.post(t, order("broken-decline", "broke"))
			b.waitState(t, "broken-decline", settle, statemachine.OrderFailed)
		},
	}, {
		// A provider that acknowledges refunds without making them.
		name: "drop-compensations", want: audit.RuleCompensated,
		sim: providers.SimConfig{Payment: providers.Faults{Broken: []string{providers.BrokenDropCompensations}},
			Shipping: providers.Faults{DeclineCustomers: []string{"far-away"}}},
		run: func(t *testing.T, b *testBundle) {
			b.post(t, order("broken-refund", "far-away"))
			b.waitState(t, "broken-refund", settle, statemachine.OrderFailed)
		},
	}, {
		// A completed order with a shipment applied twice.
		name: "ignore-keys on shipping", want: audit.RuleCompleted,
		sim: providers.SimConfig{Shipping: providers.Faults{Broken: []string{providers.BrokenIgnoreKeys}, TimeoutRate: 1, TimeoutHold: time.Second}},
		run: func(t *testing.T, b *testBundle) {
			b.post(t, order("broken-ship", "cust-1"))
			waitFor(t, settle, "a retried shipment", func() bool { return b.effects(t, "broken-ship")["ship"] >= 2 })
			require.NoError(t, b.sim.Simulator().SetFaults(providers.ProviderShipping, providers.Faults{}))
			b.waitState(t, "broken-ship", settle, statemachine.OrderCompleted)
		},
	}, {
		// A provider that applied an effect for an order nobody placed.
		name: "effect without order", want: audit.RuleOrphan,
		run: func(t *testing.T, b *testBundle) {
			body, _ := json.Marshal(providers.ChargeRequest{OrderID: "ghost", CustomerID: "c", AmountCents: 1, Currency: "USD"})
			req, _ := http.NewRequest(http.MethodPost, b.sim.URL()+"/payment/charges", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "ghost:charge")
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
		},
	}, {
		// A provider that never answers leaves the order unfinished.
		name: "stuck", want: audit.RuleStuck,
		sim: providers.SimConfig{Inventory: providers.Faults{InProgressRate: 1, InProgressHold: time.Minute}},
		run: func(t *testing.T, b *testBundle) {
			b.post(t, order("broken-stuck", "cust-1"))
			waitFor(t, settle, "a held reservation", func() bool { return b.get(t, "broken-stuck").Attempts["reserve"] >= 2 })
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
				b := setup(t, r, options{timeout: 200 * time.Millisecond, sim: tc.sim})
				require.Empty(t, runAudit(t, b, time.Hour), "a fresh system is clean")
				tc.run(t, b)
				maxRunning := time.Hour
				if tc.want == audit.RuleStuck {
					maxRunning = time.Millisecond
				}
				fired := runAudit(t, b, maxRunning)
				require.Positive(t, fired[tc.want], "the audit must catch it: %v", fired)
			})
		})
	}
}

// Two orders made under one Idempotency-Key (what a key-only retry did
// before the key became a permanent binding) are caught by the audit.
func TestAuditCatchesDuplicateOrdersPerKey(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true})
		ctx := context.Background()
		keyHash := statemachine.HashScopedIdempotencyKey("", "retried-key")
		_, _, err := b.store.BindIdempotencyKey(ctx, keyHash, "fp", "first", time.Hour)
		require.NoError(t, err)
		require.Empty(t, runAudit(t, b, time.Hour))

		eng, err := engine.New(engine.Config{}, b.store, fastOrderRegistry(), nil, tasks.NewQueue(b.client(), tasks.QueueConfig{}), nil)
		require.NoError(t, err)
		input, _ := json.Marshal(order("", "cust-1"))
		for _, id := range []string{"first", "second"} {
			_, err := eng.Start(ctx, engine.StartRequest{ID: id, Workflow: statemachine.OrderWorkflow, Input: input, Fingerprint: "fp", KeyHash: keyHash})
			require.NoError(t, err)
		}
		require.Equal(t, map[string]int{audit.RuleDuplicateKey: 1}, runAudit(t, b, time.Hour))
	})
}
