package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// orderflow_orders_running counts the running orders per state, reports
// every state that is not terminal (0 when empty), and leaves finished
// orders out.
func TestOrdersRunningPerState(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		ctx := context.Background()
		store := statemachine.NewStore(r.Client(t), statemachine.StoreConfig{})
		t.Cleanup(store.Close)
		reg := statemachine.NewOrderRegistry()
		def, err := reg.Default(statemachine.OrderWorkflow)
		require.NoError(t, err)
		move := func(id, state string, status statemachine.Status) {
			input, _ := json.Marshal(map[string]any{"customer_id": "c", "amount_cents": 100})
			_, err := store.Create(ctx, statemachine.NewInstance{ID: id, Definition: def, Input: input, Task: "t", Due: time.Now().Add(time.Hour)})
			require.NoError(t, err)
			if state == def.Initial {
				return
			}
			_, err = store.Apply(ctx, statemachine.Change{ID: id, ExpectState: def.Initial, ExpectRev: 1, Lease: statemachine.LeaseIgnore, State: state, Status: status})
			require.NoError(t, err)
		}
		for i := range 3 {
			move(fmt.Sprintf("c%d", i), statemachine.OrderCharging, statemachine.StatusRunning)
		}
		move("p", statemachine.OrderPending, statemachine.StatusRunning)
		move("done", statemachine.OrderCompleted, statemachine.StatusCompleted)

		c := newRunningCollector(store, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		pr := prometheus.NewPedanticRegistry()
		require.NoError(t, pr.Register(c))
		require.NoError(t, testutil.GatherAndCompare(pr, stringsReader(`
# HELP orderflow_orders_running Running orders per workflow state, counted at scrape time among the newest 10000 orders of the list index (older running orders are not counted).
# TYPE orderflow_orders_running gauge
`+runningLines(c.states, map[string]int{statemachine.OrderCharging: 3, statemachine.OrderPending: 1})), "orderflow_orders_running"))
		require.NotContains(t, c.states, statemachine.OrderCompleted, "terminal states are not reported")
	})
}

// runningLines renders the expected samples: every state, 0 unless counted.
func runningLines(states []string, counts map[string]int) string {
	var s string
	for _, st := range states {
		s += fmt.Sprintf("orderflow_orders_running{state=%q} %d\n", st, counts[st])
	}
	return s
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
