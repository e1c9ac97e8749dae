package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/server"
)

func TestRedisConfigTopologies(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	cluster := open(t, server.RedisConfig{Cluster: "127.0.0.1:7001, 127.0.0.1:7002", Username: "of", Password: "pw", TLS: true, CAFile: pki.ca})
	require.Equal(t, server.TopologyCluster, cluster.Topology())
	_, ok := cluster.Client.(*redis.ClusterClient)
	require.True(t, ok)
	copt, ok := cluster.MonitorOpt().(asynq.RedisClusterClientOpt)
	require.True(t, ok, "asynqmon gets asynq's cluster options")
	require.Equal(t, []string{"127.0.0.1:7001", "127.0.0.1:7002"}, copt.Addrs)
	require.Equal(t, "of", copt.Username)
	require.Equal(t, "pw", copt.Password)
	require.NotNil(t, copt.TLSConfig.RootCAs, "with the same TLS settings")
	require.Equal(t, "cluster 127.0.0.1:7001,127.0.0.1:7002", cluster.Addr())
	clone, ok := cluster.NewClient(3).(*redis.ClusterClient)
	require.True(t, ok)
	require.NoError(t, clone.Close())

	sentinel := open(t, server.RedisConfig{Sentinel: "mymaster@127.0.0.1:26379,127.0.0.1:26380", Password: "pw", SentinelPassword: "spw"})
	require.Equal(t, server.TopologySentinel, sentinel.Topology())
	fopt, ok := sentinel.MonitorOpt().(asynq.RedisFailoverClientOpt)
	require.True(t, ok, "asynqmon gets asynq's failover options")
	require.Equal(t, "mymaster", fopt.MasterName)
	require.Equal(t, []string{"127.0.0.1:26379", "127.0.0.1:26380"}, fopt.SentinelAddrs)
	require.Equal(t, "pw", fopt.Password)
	require.Equal(t, "spw", fopt.SentinelPassword)
	require.Nil(t, fopt.TLSConfig)
	require.NotContains(t, sentinel.Addr(), "pw")

	single := open(t, server.RedisConfig{URL: "redis://:old@127.0.0.1:1", Password: "new"})
	require.Equal(t, server.TopologySingle, single.Topology())
	made, ok := single.MonitorOpt().MakeRedisClient().(*redis.Client)
	require.True(t, ok)
	require.Equal(t, "new", made.Options().Password, "the password setting replaces the URL's")
	require.NoError(t, made.Close())

	for _, tc := range []struct {
		name  string
		cfg   server.RedisConfig
		field string
	}{
		{"two topologies", server.RedisConfig{URL: "redis://127.0.0.1:1", Cluster: "127.0.0.1:2"}, "URL"},
		{"seed without port", server.RedisConfig{Cluster: "127.0.0.1"}, "Cluster"},
		{"no seed", server.RedisConfig{Cluster: " , "}, "Cluster"},
		{"sentinel without name", server.RedisConfig{Sentinel: "127.0.0.1:26379"}, "Sentinel"},
		{"sentinel without address", server.RedisConfig{Sentinel: "m@"}, "Sentinel"},
		{"CA without TLS", server.RedisConfig{Cluster: "127.0.0.1:1", CAFile: pki.ca}, "CAFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.cfg.Open()
			var ce *server.RedisConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.field, ce.Field, err.Error())
		})
	}
}

// TestRedisCluster runs the whole system (a worker, the API with asynqmon,
// the simulators, the audit) on a password-protected 3-master Redis
// Cluster, and asynqmon shows the cluster.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Password: "s3cret"})
	conn := open(t, server.RedisConfig{Cluster: c.Seeds(), Password: "s3cret"})
	requireSystemWorks(t, conn)

	p, err := server.StartAPI(conn, server.APIConfig{Listen: "127.0.0.1:0", Logger: discard}, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, p.Shutdown) })
	var info struct {
		Cluster         bool   `json:"cluster"`
		RawClusterNodes string `json:"raw_cluster_nodes"`
	}
	require.NoError(t, json.Unmarshal([]byte(get(t, p.URL()+"/monitor/api/redis_info").Body), &info))
	require.True(t, info.Cluster, "asynqmon sees a cluster")
	require.Equal(t, 3, strings.Count(info.RawClusterNodes, "master"))

	wrong := open(t, server.RedisConfig{Cluster: c.Seeds(), Password: "wrong"})
	require.ErrorContains(t, wrong.Check(context.Background()), "refused the credentials")
}

// TestRedisSentinel runs the whole system on a master found through
// Sentinels.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	f := redistest.StartFailover(t, redistest.FailoverOptions{})
	conn := open(t, server.RedisConfig{Sentinel: f.Spec()})
	requireSystemWorks(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	master, err := f.CurrentMaster(ctx)
	require.NoError(t, err)
	require.Equal(t, f.Master.Addr(), master)
}
