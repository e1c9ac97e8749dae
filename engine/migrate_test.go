package engine_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/looplab/fsm"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

// toyDef is a one-move workflow whose versions differ only in where the
// move goes, so a run that used the wrong version is plain to see.
func toyDef(version int, end string) *statemachine.Definition {
	return &statemachine.Definition{
		Name: "toy", Version: version, Initial: "pending", Queue: statemachine.DefaultQueue,
		States: []statemachine.State{
			{Name: "pending", Status: statemachine.StatusRunning, OnSuccess: "start", Doc: "Accepted."},
			{Name: end, Status: statemachine.StatusCompleted, Doc: "Done."},
		},
		Events: fsm.Events{{Name: "start", Src: []string{"pending"}, Dst: end}},
	}
}

// A task queued before an instance was migrated still knows it at its old
// version. Its first write loses to the migration's; the run must then go on
// with the version the record holds, not the one its task carried, although
// the state's name is the same in both.
func TestATaskFromBeforeAMigrationRunsTheNewVersion(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		ctx := context.Background()
		reg := statemachine.NewRegistry().MustRegister(toyDef(1, "done_v1")).MustRegister(toyDef(2, "done_v2"))
		require.NoError(t, reg.SetDefault("toy", 1))
		store := statemachine.NewStore(r.Client(t), statemachine.StoreConfig{})
		t.Cleanup(store.Close)
		q := &memQueue{}
		eng, err := engine.New(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, store, reg, engine.Activities{}, q, nil)
		require.NoError(t, err)

		_, err = eng.Start(ctx, engine.StartRequest{ID: "t1", Workflow: "toy", Input: []byte(`{}`), Fingerprint: "fp"})
		require.NoError(t, err)
		first := q.take()
		require.Len(t, first, 1)
		require.NotNil(t, first[0].Hint, "the first task carries what the API wrote")

		c, err := eng.Migrate(ctx, "t1", 2, nil)
		require.NoError(t, err)
		require.True(t, c.Safe, "%v", c.Problems)

		require.NoError(t, eng.Advance(ctx, "t1", engine.AdvanceOptions{Queue: first[0].Queue, TaskID: first[0].TaskID, Hint: first[0].Hint}))
		in, err := store.Load(ctx, "t1")
		require.NoError(t, err)
		require.Equal(t, 2, in.Version)
		require.Equal(t, "done_v2", in.State, "the run followed version 2's definition")
	})
}
