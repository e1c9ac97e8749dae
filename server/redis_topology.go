package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Redis topologies, as RedisConn.Topology names them.
const (
	TopologySingle   = "single"
	TopologyCluster  = "cluster"
	TopologySentinel = "sentinel"
)

// openCluster opens a cluster client over the seeds of c.Cluster.
func (c RedisConfig) openCluster() (*RedisConn, error) {
	addrs, err := parseAddrs(c.Cluster)
	if err != nil {
		return nil, &RedisConfigError{Field: "Cluster", Err: err}
	}
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	o := &redis.ClusterOptions{
		Addrs: addrs, Username: c.Username, Password: c.Password, TLSConfig: tlsConfig,
		PoolSize: c.PoolSize,
		// Redirections (MOVED, ASK) during a reshard or a failover are
		// followed; other failures fail fast, as on a single node.
		MaxRedirects: 8, MaxRetries: 1,
		MinRetryBackoff: 2 * time.Millisecond, MaxRetryBackoff: 20 * time.Millisecond,
		DialTimeout: 2 * time.Second, Protocol: 2, DisableIdentity: true,
		MaintNotificationsConfig: maintNotificationsOff(),
	}
	base := *o
	return &RedisConn{Client: redis.NewClusterClient(o), cluster: &base}, nil
}

// openSentinel opens a failover client: the master that the Sentinels of
// c.Sentinel name, followed through failovers.
func (c RedisConfig) openSentinel() (*RedisConn, error) {
	name, seeds, ok := strings.Cut(c.Sentinel, "@")
	if !ok || name == "" {
		return nil, &RedisConfigError{Field: "Sentinel", Err: fmt.Errorf("%q: want <master-name>@host:port,host:port", c.Sentinel)}
	}
	addrs, err := parseAddrs(seeds)
	if err != nil {
		return nil, &RedisConfigError{Field: "Sentinel", Err: err}
	}
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	o := &redis.FailoverOptions{
		MasterName: name, SentinelAddrs: addrs, SentinelUsername: c.SentinelUsername, SentinelPassword: c.SentinelPassword,
		Username: c.Username, Password: c.Password, TLSConfig: tlsConfig, PoolSize: c.PoolSize,
		// As on a single node: fail fast, retry once; the failover client
		// asks the Sentinels for the master again when it is gone.
		MaxRetries: 1, MinRetryBackoff: 2 * time.Millisecond, MaxRetryBackoff: 20 * time.Millisecond,
		DialTimeout: 2 * time.Second, Protocol: 2, DisableIdentity: true,
	}
	base := *o
	return &RedisConn{Client: redis.NewFailoverClient(o), failover: &base}, nil
}

// tlsConfig returns the TLS config that c.TLS asks for (nil without it),
// with the CA and client certificate of the files.
func (c RedisConfig) tlsConfig() (*tls.Config, error) {
	var cfg *tls.Config
	if c.TLS {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if err := c.configureTLS(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseAddrs reads "host:port,host:port".
func parseAddrs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, fmt.Errorf("%q is not host:port", a)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("no address")
	}
	return out, nil
}

// Topology returns TopologySingle, TopologyCluster or TopologySentinel.
func (c *RedisConn) Topology() string {
	switch {
	case c.cluster != nil:
		return TopologyCluster
	case c.failover != nil:
		return TopologySentinel
	}
	return TopologySingle
}

// Addr describes where Redis is, for messages: an address, the cluster's
// seeds, or the master's name and its Sentinels. It never shows a password.
func (c *RedisConn) Addr() string {
	switch {
	case c.cluster != nil:
		return "cluster " + strings.Join(c.cluster.Addrs, ",")
	case c.failover != nil:
		return c.failover.MasterName + "@" + strings.Join(c.failover.SentinelAddrs, ",")
	}
	return c.opts.Addr
}

// MonitorOpt returns the settings from which asynqmon builds its own
// client: the shared connection itself on a single node (it implements
// asynq.RedisConnOpt), asynq.RedisClusterClientOpt on a cluster and
// asynq.RedisFailoverClientOpt behind Sentinels, with the same
// credentials and TLS.
func (c *RedisConn) MonitorOpt() asynq.RedisConnOpt {
	switch {
	case c.cluster != nil:
		return asynq.RedisClusterClientOpt{
			Addrs: c.cluster.Addrs, Username: c.cluster.Username, Password: c.cluster.Password,
			TLSConfig: c.cluster.TLSConfig, MaxRedirects: c.cluster.MaxRedirects, DialTimeout: c.cluster.DialTimeout,
		}
	case c.failover != nil:
		return asynq.RedisFailoverClientOpt{
			MasterName: c.failover.MasterName, SentinelAddrs: c.failover.SentinelAddrs,
			SentinelUsername: c.failover.SentinelUsername, SentinelPassword: c.failover.SentinelPassword,
			Username: c.failover.Username, Password: c.failover.Password, TLSConfig: c.failover.TLSConfig,
			DialTimeout: c.failover.DialTimeout, PoolSize: 4,
		}
	}
	return c
}
