package server_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/server"
)

func TestParseRedisURLAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url      string
		addr     string
		user, pw string
		db       int
		tls      bool
	}{
		{url: "redis://localhost:6379", addr: "localhost:6379"},
		{url: "redis://host", addr: "host:6379"},
		{url: "redis://u:p@host:6380/2", addr: "host:6380", user: "u", pw: "p", db: 2},
		{url: "redis://:p%40ss@127.0.0.1:7000/0", addr: "127.0.0.1:7000", pw: "p@ss"},
		{url: "rediss://u:p@cache.example:6380/1", addr: "cache.example:6380", user: "u", pw: "p", db: 1, tls: true},
		{url: "REDIS://host:1", addr: "host:1"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			o, err := server.ParseRedisURL(tc.url)
			require.NoError(t, err)
			require.Equal(t, tc.addr, o.Addr)
			require.Equal(t, tc.user, o.Username)
			require.Equal(t, tc.pw, o.Password)
			require.Equal(t, tc.db, o.DB)
			require.Equal(t, tc.tls, o.TLSConfig != nil)
		})
	}
}

func TestParseRedisURLRefuses(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"",
		"garbage",
		"localhost:6379",
		"http://localhost:6379",
		"unix:///tmp/redis.sock",
		"redis://host:notaport",
		"redis://host:6379/notadb",
		"redis://host:6379/0/1",
		"redis://host:6379/0?bogus=1",
		"redis://[::1:6379",
	} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			_, err := server.ParseRedisURL(raw)
			require.Error(t, err)
		})
	}
}

// No error may show a password, whatever part of the URL is wrong.
func TestParseRedisURLHidesThePassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url     string
		secrets []string // none may appear
	}{
		{"redis://u:s3cret@host:notaport", []string{"s3cret"}},
		{"redis://:s3cret@host:notaport", []string{"s3cret"}},
		{"redis://u:s3cret@host:6379/notadb", []string{"s3cret"}},
		{"redis://u:s3cret@host:6379/0?bogus=1", []string{"s3cret"}},
		{"redis://u:s3cret@[::1:6379", []string{"s3cret"}},
		{"http://u:s3cret@host:6379", []string{"s3cret"}},
		{"redis://u:s3%zzcret@host:6379", []string{"s3", "cret"}},
		{"redis://u:s3%40cret@host:6379/x", []string{"s3@cret", "s3%40cret"}},
		// An unescaped @ in the password: the host starts after the last one.
		{"redis://u:s3@cret@host:notaport", []string{"s3@cret", "cret"}},
		{"redis://u:s3@cret@host:6379/x", []string{"s3@cret", "cret"}},
		// A / or ? in the password ends the authority: the rest of the
		// password lands in the path or the query.
		{"redis://u:123/cret@host:6379/0", []string{"cret"}},
		{"redis://u:123?cret@host:6379", []string{"cret"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			_, err := server.ParseRedisURL(tc.url)
			require.Error(t, err)
			for _, s := range tc.secrets {
				require.NotContains(t, err.Error(), s)
			}
		})
	}
}

func TestOpenRedis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pool int
		want int
	}{
		{pool: 7, want: 7},
		{pool: 0, want: 10 * runtime.GOMAXPROCS(0)}, // go-redis's default
	} {
		conn, err := server.OpenRedis("redis://u:p@127.0.0.1:1/3", tc.pool)
		require.NoError(t, err, "opening does not connect")
		o := conn.Client.(*redis.Client).Options()
		require.Equal(t, tc.want, o.PoolSize)
		require.Equal(t, "127.0.0.1:1", o.Addr)
		require.Equal(t, 3, o.DB)
		require.Equal(t, "p", o.Password)
		require.Equal(t, 1, o.MaxRetries, "fail fast")
		require.NoError(t, conn.Close())
	}
	_, err := server.OpenRedis("http://x", 1)
	require.Error(t, err)
}

func TestRedisConnMakeRedisClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := redistest.New(t, redistest.BackendMiniredis)
	conn := openRedis(t, r)

	made := func() *redis.Client {
		c, ok := conn.MakeRedisClient().(*redis.Client)
		require.True(t, ok, "a *redis.Client, which asynq accepts")
		return c
	}
	a, b := made(), made()
	require.NotSame(t, a, b)
	require.NotSame(t, conn.Client, a)
	require.Equal(t, r.Addr, a.Options().Addr)
	require.NoError(t, a.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, "v", conn.Client.Get(ctx, "k").Val(), "the same Redis")

	require.NoError(t, a.Close())
	require.ErrorIs(t, a.Ping(ctx).Err(), redis.ErrClosed)
	require.NoError(t, b.Ping(ctx).Err(), "closing one made client leaves the others")
	require.NoError(t, conn.Client.Ping(ctx).Err(), "and the shared one")
	require.NoError(t, b.Close())
}
