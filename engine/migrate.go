package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/statemachine"
)

// CheckMigration says whether instance id can move to version to of its
// workflow, its state mapped by mapping (see statemachine.CheckMigration).
// It changes nothing.
func (e *Engine) CheckMigration(ctx context.Context, id string, to int, mapping map[string]string) (statemachine.MigrationCheck, error) {
	_, c, _, _, err := e.migration(ctx, id, to, mapping)
	return c, err
}

// Migrate moves instance id to version to of its workflow when
// CheckMigration finds it safe, with one compare-and-set recorded in its
// history (an event "migrated"), and queues a task to carry it on under the
// new definition. An unsafe instance is left as it is; the check says why.
func (e *Engine) Migrate(ctx context.Context, id string, to int, mapping map[string]string) (statemachine.MigrationCheck, error) {
	for tries := 0; tries < 10; tries++ {
		in, c, from, dst, err := e.migration(ctx, id, to, mapping)
		if err != nil || !c.Safe {
			return c, err
		}
		toDef, _ := e.registry.Get(in.Workflow, to)
		detail, _ := json.Marshal(map[string]any{
			"from_version": from.Version, "to_version": to, "from_state": in.State, "to_state": dst.Name,
		})
		ch := statemachine.Change{
			ID: id, ExpectState: in.State, ExpectRev: in.Rev, Lease: statemachine.LeaseIgnore, KeepLease: true, Durable: true,
			State: dst.Name, Status: dst.Status,
			Fields: statemachine.MigrationFields(toDef, dst, e.store.Now()),
			Event:  &statemachine.Event{Type: statemachine.EventMigrated, From: in.State, To: dst.Name, Detail: detail},
		}
		_, err = e.store.Apply(ctx, ch)
		if errors.Is(err, statemachine.ErrStale) {
			continue
		}
		if err != nil {
			return c, err
		}
		after, err := e.store.Load(ctx, id)
		if err != nil {
			return c, err
		}
		e.log.Info("migrated an instance", "order_id", id, "from", from.Key(), "to", toDef.Key(), "state", dst.Name)
		e.nudge(ctx, toDef, after)
		return c, nil
	}
	return statemachine.MigrationCheck{ID: id}, fmt.Errorf("migrating %s: too many concurrent writes", id)
}

// migration loads an instance and checks its move to version to.
func (e *Engine) migration(ctx context.Context, id string, to int, mapping map[string]string) (*statemachine.Instance, statemachine.MigrationCheck, *statemachine.Definition, *statemachine.State, error) {
	in, err := e.store.Load(ctx, id)
	if err != nil {
		return nil, statemachine.MigrationCheck{ID: id}, nil, nil, err
	}
	from, err := e.registry.Get(in.Workflow, in.Version)
	if err != nil {
		return in, statemachine.MigrationCheck{ID: id}, nil, nil, err
	}
	toDef, err := e.registry.Get(in.Workflow, to)
	if err != nil {
		return in, statemachine.MigrationCheck{ID: id}, nil, nil, err
	}
	c := statemachine.CheckMigration(from, toDef, in, mapping, e.store.Now())
	dst, _ := toDef.State(c.To)
	return in, c, from, dst, nil
}
