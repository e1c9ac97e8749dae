package server

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConn is how every component of a process reaches Redis: one shared
// go-redis UniversalClient (handed to asynq's client, server and inspector
// alike), and a factory of separate clients with the same options for
// asynqmon, which closes its own.
type RedisConn struct {
	Client redis.UniversalClient
	opts   *redis.Options
}

// OpenRedis parses a redis:// or rediss:// URL (with optional user and
// password, and a database number as the path) and opens a shared client.
// poolSize 0 keeps go-redis's default.
func OpenRedis(rawURL string, poolSize int) (*RedisConn, error) {
	opts, err := ParseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	// Fail fast: the API must answer 503 at once while Redis is down, and
	// the engine and asynq retry on their own. One quick retry covers a
	// pooled connection that a Redis restart broke.
	opts.MaxRetries = 1
	opts.MinRetryBackoff, opts.MaxRetryBackoff = 2*time.Millisecond, 20*time.Millisecond
	opts.DialTimeout = 2 * time.Second
	// RESP2, as asynq expects: RESP3 makes go-redis look for push
	// notifications around every command, a syscall each (~8% of a busy
	// worker's CPU in profiles).
	opts.Protocol = 2
	opts.DisableIdentity = true
	return &RedisConn{Client: redis.NewClient(opts), opts: opts}, nil
}

// ParseRedisURL checks and parses a redis:// or rediss:// URL. Errors never
// show the password.
func ParseRedisURL(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, fmt.Errorf("redis URL %q: must look like redis://[user:pass@]host:port/db or rediss://", redact(rawURL))
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		msg := err.Error()
		if strings.Contains(rawURL, "@") {
			// go-redis may repeat part of a password that looks like a path.
			msg = "invalid host, port, database or option"
		}
		return nil, fmt.Errorf("redis URL %q: %s", redact(rawURL), msg)
	}
	return opts, nil
}

// MakeRedisClient implements asynq.RedisConnOpt: it returns a new client
// with the shared options, owned by the caller.
func (c *RedisConn) MakeRedisClient() any {
	o := *c.opts
	o.PoolSize = 4
	return redis.NewClient(&o)
}

// Close closes the shared client.
func (c *RedisConn) Close() error { return c.Client.Close() }

// redact hides the user and password of a URL for messages and logs:
// everything between the scheme and the last "@".
func redact(raw string) string {
	i := strings.LastIndex(raw, "@")
	if i < 0 {
		return raw
	}
	if scheme, _, ok := strings.Cut(raw[:i], "://"); ok {
		return scheme + "://***@" + raw[i+1:]
	}
	return "***@" + raw[i+1:]
}

// cloneClient returns a new client with rdb's options and its own pool of
// poolSize connections, for callers that must close it independently (the
// wake list's blocking reads), or nil for a client type it cannot copy.
func cloneClient(rdb redis.UniversalClient, poolSize int) redis.UniversalClient {
	switch c := rdb.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize = poolSize
		o.PushNotificationProcessor = nil // the original client's own
		return redis.NewClient(&o)
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize = poolSize
		o.PushNotificationProcessor = nil
		return redis.NewClusterClient(&o)
	case *redis.Ring:
		o := *c.Options()
		o.PoolSize = poolSize
		return redis.NewRing(&o)
	}
	return nil
}
