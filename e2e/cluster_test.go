package e2e

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// errCrash stands for the API process dying at a step of Create.
var errCrash = errors.New("the API died here")

// TestClusterCreateSurvivesACrashBetweenItsSteps stops Create on a Redis
// Cluster before each of its steps, as a crash of the API there would: the
// client gets a 503 and nothing after that step is written. Create writes
// the first task, then the index entries (the order's shard), then the
// record (the order's slot, another node), then the wake-up. At every
// stop, no order is half visible, the reaper removes what a dead Create
// left in the due index, and the order completes once: on its own when its
// record was written, after the client's retry otherwise, with one set of
// effects and one entry in the list.
func TestClusterCreateSurvivesACrashBetweenItsSteps(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendCluster)
	var crashAt atomic.Value // statemachine.CreateStep
	crashAt.Store(statemachine.CreateStep(""))
	b := setup(t, r, options{pickupGrace: time.Second, createHook: func(step statemachine.CreateStep) error {
		if crashAt.Load().(statemachine.CreateStep) == step {
			return errCrash
		}
		return nil
	}})
	ctx := context.Background()
	shards := b.store.Shards()
	require.Equal(t, statemachine.DefaultClusterShards, shards.N())
	inDue := func(id string) bool {
		_, err := b.client().ZScore(ctx, shards.DueKey(shards.Of(id)), id).Result()
		return !errors.Is(err, redis.Nil)
	}
	inIndex := func(id string) bool {
		_, err := b.client().ZScore(ctx, shards.IndexKey(shards.Of(id)), id).Result()
		return !errors.Is(err, redis.Nil)
	}
	listed := func(id string) int {
		res := b.do(t, http.MethodGet, "/v1/orders?limit=500", nil)
		require.Equal(t, http.StatusOK, res.status)
		var page struct {
			Orders []struct {
				OrderID string `json:"order_id"`
			} `json:"orders"`
		}
		res.json(t, &page)
		n := 0
		for _, o := range page.Orders {
			if o.OrderID == id {
				n++
			}
		}
		return n
	}

	for _, step := range []statemachine.CreateStep{statemachine.CreateStepIndex, statemachine.CreateStepRecord, statemachine.CreateStepWake} {
		t.Run(string(step), func(t *testing.T) {
			id := "crash-before-" + string(step)
			crashAt.Store(step)
			res := b.do(t, http.MethodPost, "/v1/orders", order(id, "cust-1"))
			require.Equal(t, http.StatusServiceUnavailable, res.status, "body: %s", res.body)
			crashAt.Store(statemachine.CreateStep("")) // the API is back

			switch step {
			case statemachine.CreateStepIndex:
				// Only the first task was queued: it finds no order and
				// gives up. Nothing else exists.
				require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/v1/orders/"+id, nil).status)
				require.False(t, inDue(id))
				require.False(t, inIndex(id))
			case statemachine.CreateStepRecord:
				// The index entries without their record: the list skips
				// the entry, and the reaper removes the due entry at its
				// pickup deadline, once the first task gave up (each of
				// its tries moves the deadline to its lease's end).
				require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/v1/orders/"+id, nil).status)
				require.True(t, inIndex(id))
				require.Zero(t, listed(id), "an entry without its record is not listed")
				waitFor(t, settle, "the reaper to remove the dead Create's due entry", func() bool { return !inDue(id) })
			case statemachine.CreateStepWake:
				// The record was written, its task queued before it: the
				// order completes without the client, as no wake-up only
				// costs the fast path.
				b.waitState(t, id, settle, statemachine.OrderCompleted)
				require.Equal(t, 1, listed(id))
			}

			// The client retries, as a 5xx asks it to: one order, which
			// completes, with one set of effects.
			res = b.do(t, http.MethodPost, "/v1/orders", order(id, "cust-1"))
			require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
			o := b.waitState(t, id, settle, statemachine.OrderCompleted)
			require.Equal(t, "completed", o.Status)
			b.requireEffects(t, id, map[string]int{"reserve": 1, "charge": 1, "ship": 1})
			require.Equal(t, 1, listed(id), "listed once")
			require.True(t, inIndex(id))
			waitFor(t, settle, "the finished order to leave the due index", func() bool { return !inDue(id) })
		})
	}
}
