package chaos

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/orderflow/orderflow/internal/redisserver"
	"github.com/orderflow/orderflow/server"
	"github.com/orderflow/orderflow/statemachine"
)

// redisUnderTest is the Redis of a chaos run: one redis-server, or a
// 3-master Redis Cluster, each with AOF and appendfsync always.
type redisUnderTest struct {
	single  *redisserver.Server
	cluster *redisserver.Cluster

	mu    sync.Mutex
	moved []int // slots moved so far, in order
}

func startRedis(dir string, cluster bool) (*redisUnderTest, error) {
	if !cluster {
		s, err := redisserver.Start(redisserver.Options{Dir: dir, AppendFsyncAlways: true})
		return &redisUnderTest{single: s}, err
	}
	c, err := redisserver.StartCluster(redisserver.ClusterOptions{Dir: dir, AppendFsyncAlways: true})
	return &redisUnderTest{cluster: c}, err
}

// args are the Redis flags of the orderflow processes.
func (r *redisUnderTest) args() []string {
	if r.cluster != nil {
		return []string{"--redis-cluster", r.cluster.Seeds()}
	}
	return []string{"--redis-url", r.single.URL()}
}

// config is how the harness itself reaches Redis.
func (r *redisUnderTest) config(poolSize int) server.RedisConfig {
	if r.cluster != nil {
		return server.RedisConfig{Cluster: r.cluster.Seeds(), PoolSize: poolSize}
	}
	return server.RedisConfig{URL: r.single.URL(), PoolSize: poolSize}
}

// restart kills Redis (on a cluster, one master at random: its slots are
// down meanwhile) and starts it again on the same port and data.
func (r *redisUnderTest) restart() (string, error) {
	node := r.single
	what := "Redis"
	if r.cluster != nil {
		masters, err := r.cluster.Masters()
		if err != nil {
			return "", err
		}
		addr := masters[rand.IntN(len(masters))]
		for _, n := range r.cluster.Nodes {
			if n.Addr() == addr {
				node = n
			}
		}
		what = "cluster master " + addr
	}
	node.Kill()
	time.Sleep(500 * time.Millisecond)
	if err := node.Restart(); err != nil {
		return what, err
	}
	if r.cluster != nil {
		return what, r.cluster.WaitStable(30 * time.Second)
	}
	return what, nil
}

// reshard moves the lowest slot of the first master to the second with
// redis-cli --cluster reshard, keys included, and returns it.
func (r *redisUnderTest) reshard() (int, error) {
	if r.cluster == nil {
		return 0, fmt.Errorf("reshard: not a cluster")
	}
	masters, err := r.cluster.Masters()
	if err != nil {
		return 0, err
	}
	if len(masters) < 2 {
		return 0, fmt.Errorf("reshard: %d masters", len(masters))
	}
	slot, err := r.cluster.MoveLowestSlot(r.cluster.Addrs()[0], masters[1])
	if err == nil {
		r.mu.Lock()
		r.moved = append(r.moved, slot)
		r.mu.Unlock()
	}
	return slot, err
}

// stop stops every Redis process.
func (r *redisUnderTest) stop() {
	if r.cluster != nil {
		r.cluster.Stop()
		return
	}
	r.single.Stop()
}

// slotOrderID returns an order ID made from name whose record lives in
// slot, so that a reshard that moves the slot moves the order.
func slotOrderID(name string, slot int) string {
	for j := 0; ; j++ {
		id := name + "-" + strconv.Itoa(j)
		if statemachine.SlotOf(statemachine.RecordKey(id)) == slot {
			return id
		}
	}
}
