package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisConn is how every component of a process reaches Redis: one shared
// go-redis UniversalClient (handed to asynq's client, server and inspector
// alike), and a factory of separate clients with the same options for
// asynqmon, which closes its own.
type RedisConn struct {
	Client redis.UniversalClient
	opts   *redis.Options
}

// RedisConfig is how a process reaches Redis. Every field's comment gives
// its default.
type RedisConfig struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS.
	// Required.
	URL string
	// PoolSize is the shared client's pool size. Default go-redis's.
	PoolSize int
	// CAFile is a PEM file of the CAs that sign the server's certificate,
	// in place of the system's. Needs a rediss:// URL. Default none.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for a
	// Redis that requires client certificates. They go together and need
	// a rediss:// URL. Default none.
	CertFile, KeyFile string
}

// RedisConfigError is a bad RedisConfig; Field names the field.
type RedisConfigError struct {
	Field string
	Err   error
}

func (e *RedisConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *RedisConfigError) Unwrap() error { return e.Err }

// OpenRedis parses a redis:// or rediss:// URL (with optional user and
// password, and a database number as the path) and opens a shared client.
// poolSize 0 keeps go-redis's default.
func OpenRedis(rawURL string, poolSize int) (*RedisConn, error) {
	return RedisConfig{URL: rawURL, PoolSize: poolSize}.Open()
}

// Open checks the config and opens a shared client. It does not connect:
// see RedisConn.Check.
func (c RedisConfig) Open() (*RedisConn, error) {
	opts, err := ParseRedisURL(c.URL)
	if err != nil {
		return nil, err
	}
	if err := c.configureTLS(opts); err != nil {
		return nil, err
	}
	if c.PoolSize > 0 {
		opts.PoolSize = c.PoolSize
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
	opts.MaintNotificationsConfig = maintNotificationsOff()
	return &RedisConn{Client: redis.NewClient(opts), opts: opts}, nil
}

// configureTLS adds the CA and the client certificate to the TLS config
// that redis.ParseURL made for a rediss:// URL.
func (c RedisConfig) configureTLS(opts *redis.Options) error {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil
	}
	if opts.TLSConfig == nil {
		field := "CAFile"
		if c.CAFile == "" {
			field = "CertFile"
		}
		return &RedisConfigError{Field: field, Err: errors.New("needs a rediss:// URL")}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return &RedisConfigError{Field: "CAFile", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return &RedisConfigError{Field: "CAFile", Err: fmt.Errorf("%s holds no PEM certificate", c.CAFile)}
		}
		opts.TLSConfig.RootCAs = pool
	}
	switch {
	case c.CertFile == "" && c.KeyFile == "":
	case c.CertFile == "":
		return &RedisConfigError{Field: "CertFile", Err: errors.New("is required with KeyFile")}
	case c.KeyFile == "":
		return &RedisConfigError{Field: "KeyFile", Err: errors.New("is required with CertFile")}
	default:
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return &RedisConfigError{Field: "CertFile", Err: err}
		}
		opts.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	return nil
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

// Check pings Redis and returns an error when Redis refuses the credentials
// or the TLS handshake fails: settings that no retry will fix. An
// unreachable Redis is not an error here, since every component retries on
// its own. Errors never show the password.
func (c *RedisConn) Check(ctx context.Context) error {
	err := c.Client.Ping(ctx).Err()
	var (
		verify *tls.CertificateVerificationError
		record tls.RecordHeaderError
		op     *net.OpError
	)
	switch {
	case err == nil:
		return nil
	case redis.HasErrorPrefix(err, "WRONGPASS"), redis.HasErrorPrefix(err, "NOAUTH"), redis.HasErrorPrefix(err, "NOPERM"):
		return fmt.Errorf("redis at %s refused the credentials: %w", c.opts.Addr, err)
	case errors.As(err, &verify), errors.As(err, &record),
		errors.As(err, &op) && op.Op == "remote error": // a TLS alert, such as "certificate required"
		return fmt.Errorf("redis at %s: TLS failed: %w", c.opts.Addr, err)
	}
	return nil
}

// MakeRedisClient implements asynq.RedisConnOpt: it returns a new client
// with the shared options (credentials and TLS included), owned by the
// caller.
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
//
// The clone gets its own maintenance-notification config, turned off:
// go-redis rewrites the original's while connecting (auto mode falling back
// to off), so copying it would race, and with RESP2 it is off anyway.
func cloneClient(rdb redis.UniversalClient, poolSize int) redis.UniversalClient {
	switch c := rdb.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize = poolSize
		o.PushNotificationProcessor = nil // the original client's own
		o.MaintNotificationsConfig = maintNotificationsOff()
		return redis.NewClient(&o)
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize = poolSize
		o.PushNotificationProcessor = nil
		o.MaintNotificationsConfig = maintNotificationsOff()
		return redis.NewClusterClient(&o)
	case *redis.Ring:
		o := *c.Options()
		o.PoolSize = poolSize
		return redis.NewRing(&o)
	}
	return nil
}

// maintNotificationsOff is a go-redis maintenance-notification config that
// turns the feature off: it needs RESP3 push notifications.
func maintNotificationsOff() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}
