package providers

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
)

// simScriptRuns records the simulators' scripts a client ran, by hash, and
// the errors they returned.
type simScriptRuns struct {
	mu     sync.Mutex
	ran    map[string]int
	failed []string
}

func (h *simScriptRuns) note(cmds []redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cmds {
		args := c.Args()
		name := strings.ToLower(fmt.Sprint(args[0]))
		if (name != "evalsha" && name != "eval") || len(args) < 2 {
			continue
		}
		hash := fmt.Sprint(args[1])
		if name == "eval" {
			hash = redis.NewScript(hash).Hash()
		}
		h.ran[hash]++
		if err := c.Err(); err != nil && err != redis.Nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			h.failed = append(h.failed, err.Error())
		}
	}
}

// TestClusterSimulatorScripts runs every Lua script of the simulators on a
// real 3-master Redis Cluster: a reservation at named warehouses with
// limited stock, a charge held in progress then applied, a refund, a
// long-running shipment followed to delivery, a release. Each provider's
// keys share the tag {sim:<provider>}, so each script stays in one slot.
func TestClusterSimulatorScripts(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	r := &redistest.Instance{Backend: redistest.BackendCluster, Addr: c.Nodes[0].Addr(), Cluster: c}
	runs := &simScriptRuns{ran: map[string]int{}}
	b := setupSim(t, r, simOpts{cfg: SimConfig{
		InitialStock: 10,
		Payment:      Faults{InProgressRate: 1, InProgressHold: 50 * time.Millisecond},
		Shipping:     Faults{ShipmentDuration: testShipmentDuration},
	}})
	b.rdb.AddHook(redistest.Observer(runs.note))
	ctx := t.Context()
	items := []Item{{SKU: "sku-1", Qty: 2}}

	resID, err := b.set.Inventory.Reserve(ctx, ReserveRequest{IdempotencyKey: "o1:reserve", OrderID: "o1", Items: items, Warehouse: "east"})
	require.NoError(t, err)
	var txnID string
	require.Eventually(t, func() bool {
		txnID, err = b.set.Payment.Charge(ctx, ChargeRequest{IdempotencyKey: "o1:charge", OrderID: "o1", CustomerID: "c1", AmountCents: 500, Currency: "USD"})
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the charge held in progress is applied")
	_, err = b.set.Payment.Refund(ctx, RefundRequest{IdempotencyKey: "o1:refund", OrderID: "o1", TransactionID: txnID, AmountCents: 500, Currency: "USD"})
	require.NoError(t, err)
	s, err := b.set.Shipping.ShipAsync(ctx, shipReq("o1", "c1"))
	require.NoError(t, err)
	end := followShipment(t, func() (Shipment, error) { return b.set.Shipping.GetShipment(ctx, s.ID) })
	require.Equal(t, ShipmentDelivered, end.Status)
	require.NoError(t, b.set.Inventory.Release(ctx, ReleaseRequest{IdempotencyKey: "o1:release", OrderID: "o1", ReservationID: resID}))

	avail, limited, err := b.ledger.StockAt(ctx, "east", "sku-1")
	require.NoError(t, err)
	require.True(t, limited)
	require.Equal(t, 10, avail, "the stock is back")

	runs.mu.Lock()
	defer runs.mu.Unlock()
	for name, sc := range map[string]*redis.Script{"record": recordScript, "reserve": reserveScript, "release": releaseScript,
		"refund": refundScript, "shipment": shipmentScript, "hold": holdScript} {
		require.Positive(t, runs.ran[sc.Hash()], "%s.lua never ran", name)
	}
	require.Empty(t, runs.failed, "scripts failed on the cluster")
}
