package redistest

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Observer is a go-redis hook that calls itself with the commands a client
// sent, once each command or pipeline has its answer: tests use it to see
// which scripts ran, and where.
type Observer func(cmds []redis.Cmder)

// DialHook implements redis.Hook.
func (o Observer) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (o Observer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		o([]redis.Cmder{cmd})
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (o Observer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		o(cmds)
		return err
	}
}
