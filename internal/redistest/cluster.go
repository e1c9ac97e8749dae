package redistest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/orderflow/orderflow/internal/redisserver"
)

// ClusterOptions configure a test's Redis Cluster.
type ClusterOptions struct {
	// Masters is the number of masters. Default 3.
	Masters int
	// Replicas is the number of replicas of each master. Default 0.
	Replicas int
	// AppendFsyncAlways turns on AOF with appendfsync always on every node.
	AppendFsyncAlways bool
	// Password sets requirepass and masterauth on every node.
	Password string
}

// Cluster is a Redis Cluster owned by one test.
type Cluster struct {
	*redisserver.Cluster
	t testing.TB
}

// StartCluster starts a Redis Cluster of redis-server processes on free
// loopback ports, joined with redis-cli --cluster create, and stops it when
// the test ends. It skips outside CI when redis-server or redis-cli is
// missing, and fails under CI=true.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	RequireCLI(t)
	c, err := redisserver.StartCluster(redisserver.ClusterOptions{
		Dir: t.TempDir(), Masters: opts.Masters, Replicas: opts.Replicas,
		AppendFsyncAlways: opts.AppendFsyncAlways, Password: opts.Password,
	})
	if err != nil {
		t.Fatalf("starting a Redis Cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	return &Cluster{Cluster: c, t: t}
}

// Client returns a new cluster client over every node, closed at the end
// of the test.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rdb := c.Cluster.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// FailoverOptions configure a test's Sentinel-managed Redis.
type FailoverOptions = redisserver.FailoverOptions

// StartFailover starts a master, its replicas and Sentinels on free
// loopback ports (redisserver.StartFailover), and stops them when the test
// ends. It skips outside CI when redis-server is missing, and fails under
// CI=true. Dir is set for the test.
func StartFailover(t testing.TB, opts FailoverOptions) *redisserver.Failover {
	t.Helper()
	RequireBinary(t)
	opts.Dir = t.TempDir()
	f, err := redisserver.StartFailover(opts)
	if err != nil {
		t.Fatalf("starting Redis with Sentinels: %v", err)
	}
	t.Cleanup(f.Stop)
	return f
}
