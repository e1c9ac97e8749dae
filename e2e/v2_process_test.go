package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/statemachine"
)

// v2WorkerArgs runs a worker process for workflow v2.
func (b *testBundle) v2WorkerArgs(lease string, extra ...string) []string {
	pc := b.sim.HTTPConfig()
	return append(append(b.workerArgs(lease), "--risk-url", pc.RiskURL), extra...)
}

// A worker SIGKILLed while it follows a shipment is replaced by one that
// resumes from the last checkpoint: it follows the same shipment (the one
// its predecessor started, kept in the order), never a new one, and the
// order completes with one shipment. The resume time is the heartbeat
// timeout plus the reaper's pass.
func TestKilledWorkerMidShipmentResumesTheSameShipment(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r, options{noWorker: true, version: 2,
			sim: providers.SimConfig{Shipping: providers.Faults{ShipmentDuration: 20 * time.Second}}})
		w1 := startProcess(t, b.v2WorkerArgs("1s")...)
		b.post(t, order("ship-kill", "cust-1"))
		waitFor(t, 2*settle, "the shipment to be followed", func() bool {
			p := b.get(t, "ship-kill").Progress
			return p != nil && p.Step == statemachine.StepShipTracked && p.Percent > 0
		})
		before, err := b.store.Load(t.Context(), "ship-kill")
		require.NoError(t, err)
		shipment := before.Results[orders.ResultShipmentID]
		require.NotEmpty(t, shipment, "the shipment's ID is a checkpoint in the order")

		w1.signal(syscall.SIGKILL)
		killed := time.Now()
		startProcess(t, b.v2WorkerArgs("1s")...)
		var resumed time.Duration
		waitFor(t, 3*settle, "a heartbeat from the new worker", func() bool {
			p := b.get(t, "ship-kill").Progress
			if p != nil && p.At.After(killed) {
				resumed = time.Since(killed)
				return true
			}
			return false
		})
		t.Logf("%s: a shipment followed by a SIGKILLed worker resumed %s after the kill (heartbeat timeout 10s, reaper every 200ms)",
			r.Backend, resumed.Round(time.Millisecond))
		after, err := b.store.Load(t.Context(), "ship-kill")
		require.NoError(t, err)
		require.Equal(t, shipment, after.Results[orders.ResultShipmentID], "the same shipment, followed on")
		require.Equal(t, 1, b.effects(t, "ship-kill")["ship"], "one shipment")
	})
}

// The review deadline is a timer of the engine, not a sleep: with the API,
// the worker and Redis all killed while an order waits in review, and
// started again after the deadline passed, the deadline fires, once.
func TestReviewDeadlineSurvivesKillingEveryProcess(t *testing.T) {
	t.Parallel()
	redistest.RequireBinary(t)
	r := redistest.NewWith(t, redistest.BackendRedis, redistest.Options{AppendFsyncAlways: true})
	b := setup(t, r, options{noWorker: true, version: 2,
		sim: providers.SimConfig{Risk: providers.Faults{ReviewCustomers: []string{"slow"}}}})
	port, err := redistest.FreePort()
	require.NoError(t, err)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	apiArgs := []string{"api", "--redis-url", r.URL, "--listen", listen, "--workflow-version", "2", "--log-format", "text"}
	api := startProcess(t, apiArgs...)
	worker := startProcess(t, b.v2WorkerArgs("1s", "--review-timeout", "2s")...)
	waitFor(t, settle, "the API process", func() bool {
		res, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == http.StatusOK
	})
	postTo(t, "http://"+listen, order("deadline-1", "slow"))
	in := b.waitStore(t, "deadline-1", settle, statemachine.OrderInReview)
	require.False(t, in.Deadline.IsZero())

	// Every process dies; the deadline passes while nothing runs.
	worker.signal(syscall.SIGKILL)
	api.signal(syscall.SIGKILL)
	r.Stop()
	waitFor(t, settle, "the deadline to pass with nothing running", func() bool { return time.Now().After(in.Deadline) })
	r.Start(t)
	startProcess(t, apiArgs...)
	startProcess(t, b.v2WorkerArgs("1s", "--review-timeout", "2s")...)

	b.waitStore(t, "deadline-1", 2*settle, statemachine.OrderCancelled)
	var fired int
	evs, err := b.store.History(t.Context(), "deadline-1")
	require.NoError(t, err)
	for _, ev := range evs {
		if ev.Event == "review_timed_out" {
			fired++
		}
	}
	require.Equal(t, 1, fired, "the deadline fired once")
}

// postTo posts an order to the API at base and requires a 202.
func postTo(t *testing.T, base string, req orders.Request) {
	t.Helper()
	body, err := json.Marshal(req)
	require.NoError(t, err)
	res, err := http.Post(base+"/v1/orders", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusAccepted, res.StatusCode)
}

// waitStore waits, reading Redis directly, until the order is in one of
// states, and returns it.
func (b *testBundle) waitStore(t *testing.T, id string, within time.Duration, states ...string) *statemachine.Instance {
	t.Helper()
	var in *statemachine.Instance
	waitFor(t, within, "order "+id+" to reach "+strings.Join(states, " or "), func() bool {
		var err error
		in, err = b.store.Load(t.Context(), id)
		return err == nil && slices.Contains(states, in.State)
	})
	return in
}
