package statemachine

import (
	"context"
	"fmt"
)

// Watch marks an instance as waited for: when a transition finishes it, its
// ID is published on FinishedChannel. Subscribe before calling Watch. It
// returns the instance's status now, or ErrNotFound.
func (s *Store) Watch(ctx context.Context, id string) (Status, error) {
	st, err := s.sc.watch.Run(ctx, s.rdb, []string{RecordKey(id)}).Text()
	if err != nil {
		return "", fmt.Errorf("watching instance: %w", err)
	}
	if st == "" {
		return "", ErrNotFound
	}
	return Status(st), nil
}
