package flowcontrol

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// Flow control on a Redis Cluster: every script's keys share one hash tag,
// so each runs on one node, and the lines of two customers (two tags, most
// likely on two nodes) are served side by side. A script that touched keys
// of two slots would fail here with CROSSSLOT.
func TestFlowControlOnACluster(t *testing.T) {
	t.Parallel()
	redistest.EachOf(t, []redistest.Backend{redistest.BackendCluster}, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := Config{
			Rates:           map[string]Rate{"payment": {PerSecond: 1, Burst: 5}},
			Limits:          []Limit{{Step: "charge", Field: "customer_id", Max: 1}},
			Breaker:         BreakerConfig{ErrorRate: 0.5, MinCalls: 2, Window: 5 * time.Second, OpenFor: time.Minute},
			Lease:           300 * time.Millisecond,
			JanitorInterval: 20 * time.Millisecond,
		}
		f, other := b.flow(t, cfg), b.flow(t, cfg)
		go f.Run(ctx) // the janitor sweeps lines of every slot
		require.NoError(t, f.Publish(ctx))
		charging := b.state(statemachine.OrderCharging)

		// Two customers' lines, each with a holder and a waiter.
		x, y := b.instance(t, "x", "ann", statemachine.OrderCharging), b.instance(t, "y", "ann", statemachine.OrderCharging)
		u, v := b.instance(t, "u", "bob", statemachine.OrderCharging), b.instance(t, "v", "bob", statemachine.OrderCharging)
		ax, au := admit(t, f, x, charging), admit(t, other, u, charging)
		requireAdmitted(t, ax)
		requireAdmitted(t, au)
		ay0 := admit(t, other, y, charging) // y waits for x
		require.True(t, ay0.Park, "%+v", ay0)
		require.True(t, admit(t, f, v, charging).Park)
		ax.Done(ctx, nil)
		au.Done(ctx, nil)
		require.Eventually(t, func() bool {
			return len(b.eng.takeWoken()) > 0
		}, 5*time.Second, 10*time.Millisecond, "the first in each line is woken")

		// The rate limit is shared across workers and slots: the burst of 5
		// is used up (every ask above took a token), so the next one waits.
		ay := admit(t, f, y, charging)
		requireAdmitted(t, ay)
		av := admit(t, other, v, charging)
		require.Positive(t, av.Wait, "the rate limit's next token")

		// Errors trip the breaker, its state written on the provider's slot.
		ay.Done(ctx, errUnavailable)
		admin := NewAdmin(b.rdb, nil)
		require.Eventually(t, func() bool {
			a := admit(t, f, v, charging)
			if a.Done != nil {
				a.Done(ctx, errUnavailable)
			}
			p, err := admin.Get(ctx, "payment")
			require.NoError(t, err)
			return p.State == StateOpen
		}, 10*time.Second, 50*time.Millisecond, "two errors of two calls open the circuit")

		// An operator's pause and resume, on every provider.
		ps, err := admin.List(ctx)
		require.NoError(t, err)
		require.Len(t, ps, len(DefaultProviders))
		for _, name := range DefaultProviders {
			p, err := admin.Pause(ctx, name)
			require.NoError(t, err)
			require.Equal(t, StatePaused, p.State)
			p, err = admin.Resume(ctx, name)
			require.NoError(t, err)
			require.NotEqual(t, StatePaused, p.State)
		}

		// The janitor empties both lines' index once they are served.
		require.Eventually(t, func() bool { return b.rdb.ZCard(ctx, waitingKey).Val() == 0 }, 10*time.Second, 20*time.Millisecond)
	})
}
