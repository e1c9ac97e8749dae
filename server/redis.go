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
		return nil, fmt.Errorf("redis URL %q: %v", redact(rawURL), redactErr(err, u))
	}
	return opts, nil
}

// redactErr drops a URL's password from an error message.
func redactErr(err error, u *url.URL) string {
	msg := err.Error()
	if u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "***")
		}
	}
	return msg
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

// cloneClient returns a new client with rdb's options and its own pool of
// poolSize connections, for callers that must close it independently (the
// wake list's blocking reads), or nil for a client type it cannot copy.
func cloneClient(rdb redis.UniversalClient, poolSize int) redis.UniversalClient {
	switch c := rdb.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize = poolSize
		return redis.NewClient(&o)
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize = poolSize
		return redis.NewClusterClient(&o)
	case *redis.Ring:
		o := *c.Options()
		o.PoolSize = poolSize
		return redis.NewRing(&o)
	}
	return nil
}
