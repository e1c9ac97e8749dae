package engine

import (
	"context"
	"time"
)

// Task asks a worker to advance one instance.
type Task struct {
	// InstanceID is the instance to advance.
	InstanceID string
	// Queue is the queue the task goes to.
	Queue string
	// TaskID deduplicates: while a task with this ID is queued, enqueueing
	// another is a no-op.
	TaskID string
	// Delay postpones the task (retry backoff).
	Delay time.Duration
	// Hint optionally carries what the enqueuer knows of the instance.
	Hint *Hint
}

// Queue is the durable task queue the engine hands work to (asynq, see
// package tasks).
type Queue interface {
	// Enqueue queues t. A task with the same TaskID already queued counts as
	// success.
	Enqueue(ctx context.Context, t Task) error
	// Waiting reports whether the task is queued and not yet running: pending,
	// scheduled or waiting to retry.
	Waiting(ctx context.Context, queue, taskID string) (bool, error)
}
