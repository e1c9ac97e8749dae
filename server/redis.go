package server

import (
	"fmt"
	"net/url"
	"strings"

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
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return nil, fmt.Errorf("redis URL %q: must look like redis://[user:pass@]host:port/db or rediss://", redact(rawURL))
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL %q: %w", redact(rawURL), err)
	}
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	return &RedisConn{Client: redis.NewClient(opts), opts: opts}, nil
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

// redact hides a password in a URL for messages and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.Index(raw, "@"); i >= 0 {
			return "redis://***@" + raw[i+1:]
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.String()
}
