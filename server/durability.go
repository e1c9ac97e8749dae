package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/statemachine"
)

// CheckDurability reads Redis's persistence settings at start-up and logs a
// warning for each way they fall short of the durability setting d (see
// statemachine.Store.CheckDurability). It never stops the process: the
// operator decides.
func CheckDurability(ctx context.Context, rdb redis.UniversalClient, d statemachine.Durability, log *slog.Logger) {
	store := statemachine.NewStore(rdb, statemachine.StoreConfig{Durability: d})
	defer store.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	warnings, err := store.CheckDurability(ctx)
	if err != nil {
		log.Warn("could not check Redis persistence", "durability", d.String(), "err", err)
		return
	}
	for _, w := range warnings {
		log.Warn(w, "durability", d.String())
	}
	if len(warnings) == 0 {
		log.Info("durability checked", "durability", d.String())
	}
}
