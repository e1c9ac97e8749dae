package cli

import (
	"context"
	"fmt"
	"log/slog"
)

// redisLogger routes go-redis's internal log lines (such as "failed to dial"
// while Redis restarts) to slog at debug level: the callers already report
// the errors that matter, with context.
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "lib", "go-redis")
}
