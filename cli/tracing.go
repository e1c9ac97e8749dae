package cli

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/orderflow/orderflow/internal/tracing"
)

// startTracing installs the OTLP trace exporter when the OTEL_* variables
// ask for it (see package tracing) and returns what flushes it at the end.
func startTracing(ctx context.Context, service string, log *slog.Logger) (stop func(), err error) {
	shutdown, err := tracing.Setup(ctx, service)
	if err != nil {
		return nil, usageError{err}
	}
	if tracing.Enabled(os.Getenv) {
		log.Info("tracing: exporting spans over OTLP/HTTP", "service", service)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("flushing the last spans", "err", err)
		}
	}, nil
}
