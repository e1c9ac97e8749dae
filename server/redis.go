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
// alike) over a single node, a Redis Cluster or a Sentinel-managed master,
// and the settings that asynqmon, which builds and closes its own client,
// gets through MonitorOpt.
type RedisConn struct {
	Client redis.UniversalClient
	// Exactly one of these is set, after the topology.
	opts     *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
}

// RedisConfig is how a process reaches Redis: exactly one of URL, Cluster
// and Sentinel. Every field's comment gives its default.
type RedisConfig struct {
	// URL is redis://[user:pass@]host:port/db, or rediss:// for TLS, for a
	// single node. Default none.
	URL string
	// Cluster is the comma-separated seed addresses (host:port,...) of a
	// Redis Cluster. Default none.
	Cluster string
	// Sentinel is "<master-name>@host:port,host:port": the Sentinels that
	// know which node is the master. Default none.
	Sentinel string
	// Username and Password authenticate to the data nodes (for URL they
	// replace the URL's own). Default none.
	Username, Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels.
	// Default none.
	SentinelUsername, SentinelPassword string
	// TLS turns TLS on for Cluster and Sentinel (a URL asks for it with
	// rediss://). Default false.
	TLS bool
	// PoolSize is the shared client's pool size (per node on a cluster).
	// Default go-redis's.
	PoolSize int
	// CAFile is a PEM file of the CAs that sign the server's certificate,
	// in place of the system's. Needs TLS. Default none.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for a
	// Redis that requires client certificates. They go together and need
	// TLS. Default none.
	CertFile, KeyFile string
}

// ErrRedisTopologies is a RedisConfig with more than one of URL, Cluster
// and Sentinel.
var ErrRedisTopologies = errors.New("URL, Cluster and Sentinel exclude each other")

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
	set := 0
	for _, v := range []string{c.URL, c.Cluster, c.Sentinel} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, &RedisConfigError{Field: "URL", Err: ErrRedisTopologies}
	case c.Cluster != "":
		return c.openCluster()
	case c.Sentinel != "":
		return c.openSentinel()
	}
	opts, err := ParseRedisURL(c.URL)
	if err != nil {
		return nil, err
	}
	if c.TLS && opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.Username != "" {
		opts.Username = c.Username
	}
	if c.Password != "" {
		opts.Password = c.Password
	}
	if err := c.configureTLS(opts.TLSConfig); err != nil {
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
	base := *opts // NewClient fills in opts; clones start from the settings
	return &RedisConn{Client: redis.NewClient(opts), opts: &base}, nil
}

// configureTLS adds the CA and the client certificate to cfg, the TLS
// config of the connections (nil without TLS).
func (c RedisConfig) configureTLS(cfg *tls.Config) error {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" {
		return nil
	}
	if cfg == nil {
		field := "CAFile"
		if c.CAFile == "" {
			field = "CertFile"
		}
		need := "needs a rediss:// URL"
		if c.URL == "" {
			need = "needs TLS"
		}
		return &RedisConfigError{Field: field, Err: errors.New(need)}
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
		cfg.RootCAs = pool
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
		cfg.Certificates = []tls.Certificate{cert}
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
		return fmt.Errorf("redis at %s refused the credentials: %w", c.Addr(), err)
	case errors.As(err, &verify), errors.As(err, &record),
		errors.As(err, &op) && op.Op == "remote error": // a TLS alert, such as "certificate required"
		return fmt.Errorf("redis at %s: TLS failed: %w", c.Addr(), err)
	}
	return nil
}

// MakeRedisClient implements asynq.RedisConnOpt: it returns a new client
// with the shared options (credentials and TLS included) and a small pool,
// owned by the caller.
func (c *RedisConn) MakeRedisClient() any { return c.NewClient(4) }

// NewClient returns a new client of the same topology and settings as the
// shared one, with a pool of poolSize connections (per node on a cluster),
// owned by the caller: for work that must close its client on its own, such
// as the wake path's blocking reads.
func (c *RedisConn) NewClient(poolSize int) redis.UniversalClient {
	switch {
	case c.cluster != nil:
		o := *c.cluster
		o.PoolSize = poolSize
		o.MaintNotificationsConfig = maintNotificationsOff()
		return redis.NewClusterClient(&o)
	case c.failover != nil:
		o := *c.failover
		o.PoolSize = poolSize
		return redis.NewFailoverClient(&o)
	}
	o := *c.opts
	o.PoolSize = poolSize
	o.MaintNotificationsConfig = maintNotificationsOff()
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
