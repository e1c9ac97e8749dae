package server

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// A clone must not share the push notification processor that NewClient
// stored in the original's options: the clone then cannot register its own
// handlers, and go-redis logs "failed to initialize maintnotifications ...
// cannot overwrite existing handler" at every Worker.Start on a RESP3 Redis.
func TestCloneClientOwnsItsPushProcessor(t *testing.T) {
	t.Parallel()
	orig := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = orig.Close() })
	clone, ok := cloneClient(orig, 3).(*redis.Client)
	require.True(t, ok)
	t.Cleanup(func() { _ = clone.Close() })
	require.Equal(t, 3, clone.Options().PoolSize)
	require.Equal(t, orig.Options().Addr, clone.Options().Addr)
	require.NotNil(t, orig.Options().PushNotificationProcessor)
	require.False(t, orig.Options().PushNotificationProcessor == clone.Options().PushNotificationProcessor, "the clone shares the original's push processor")
}

func TestCloneClientOfAnUnknownType(t *testing.T) {
	t.Parallel()
	require.Nil(t, cloneClient(nil, 1))
}
