package redisserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// FailoverOptions configure a replicated Redis watched by Sentinels.
type FailoverOptions struct {
	// Dir holds one subdirectory per process; it must exist.
	Dir string
	// MasterName is the name the Sentinels monitor the master under.
	// Default "orderflow".
	MasterName string
	// Replicas is the number of replicas. Default 1.
	Replicas int
	// Sentinels is the number of Sentinels; a majority of them must agree
	// that the master is down. Default 3.
	Sentinels int
	// DownAfter is how long the master must not answer before a Sentinel
	// takes it for down. Default 1s.
	DownAfter time.Duration
	// AppendFsyncAlways turns on AOF with appendfsync always on the master
	// and the replicas.
	AppendFsyncAlways bool
}

// Failover is a master, its replicas and the Sentinels that promote a
// replica when the master dies.
type Failover struct {
	opts      FailoverOptions
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server
}

// StartFailover starts the master, its replicas (waiting until each is in
// sync) and the Sentinels (waiting until each sees every replica and the
// other Sentinels). Sentinels run as redis-sentinel when it is on PATH,
// otherwise as redis-server --sentinel (the same program).
func StartFailover(opts FailoverOptions) (_ *Failover, err error) {
	if opts.MasterName == "" {
		opts.MasterName = "orderflow"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Sentinels == 0 {
		opts.Sentinels = 3
	}
	if opts.DownAfter == 0 {
		opts.DownAfter = time.Second
	}
	f := &Failover{opts: opts}
	defer func() {
		if err != nil {
			f.Stop()
		}
	}()
	sub := func(name string) (string, error) {
		d := filepath.Join(opts.Dir, name)
		return d, os.MkdirAll(d, 0o755)
	}
	dir, err := sub("master")
	if err != nil {
		return nil, err
	}
	if f.Master, err = Start(Options{Dir: dir, AppendFsyncAlways: opts.AppendFsyncAlways}); err != nil {
		return nil, err
	}
	for i := range opts.Replicas {
		if dir, err = sub("replica" + strconv.Itoa(i)); err != nil {
			return nil, err
		}
		r, err := Start(Options{Dir: dir, AppendFsyncAlways: opts.AppendFsyncAlways,
			Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(f.Master.port)}})
		if err != nil {
			return nil, err
		}
		f.Replicas = append(f.Replicas, r)
	}
	if err := f.waitReplicasInSync(30 * time.Second); err != nil {
		return nil, err
	}
	bin, lookErr := exec.LookPath("redis-sentinel")
	if lookErr != nil {
		if bin, lookErr = exec.LookPath("redis-server"); lookErr != nil {
			return nil, ErrNotInstalled
		}
	}
	quorum := opts.Sentinels/2 + 1
	for i := range opts.Sentinels {
		if dir, err = sub("sentinel" + strconv.Itoa(i)); err != nil {
			return nil, err
		}
		s, err := f.startSentinel(bin, dir, quorum)
		if err != nil {
			return nil, err
		}
		f.Sentinels = append(f.Sentinels, s)
	}
	return f, f.waitSentinelsAgree(30 * time.Second)
}

// startSentinel writes a Sentinel's config (Sentinels rewrite their config
// file, so each has its own) and starts it on a free port.
func (f *Failover) startSentinel(bin, dir string, quorum int) (*Server, error) {
	var err error
	for range 5 {
		port, perr := FreePort()
		if perr != nil {
			err = perr
			continue
		}
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile %s\n"+
			"sentinel resolve-hostnames no\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 10000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, filepath.Join(dir, "redis.log"),
			f.opts.MasterName, f.Master.port, quorum,
			f.opts.MasterName, f.opts.DownAfter.Milliseconds(),
			f.opts.MasterName, f.opts.MasterName)
		if err = os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		s := &Server{bin: bin, port: port, opts: Options{Dir: dir}, sentinelConf: conf}
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("starting a sentinel: %w", err)
}

// SentinelAddrs returns the Sentinels' host:port addresses.
func (f *Failover) SentinelAddrs() []string {
	out := make([]string, len(f.Sentinels))
	for i, s := range f.Sentinels {
		out[i] = s.Addr()
	}
	return out
}

// Spec returns "<master-name>@host:port,host:port", as --redis-sentinel
// takes it.
func (f *Failover) Spec() string {
	return f.opts.MasterName + "@" + strings.Join(f.SentinelAddrs(), ",")
}

// MasterName returns the name the Sentinels monitor the master under.
func (f *Failover) MasterName() string { return f.opts.MasterName }

// CurrentMaster asks the Sentinels which address is the master now.
func (f *Failover) CurrentMaster(ctx context.Context) (string, error) {
	var last error
	for _, s := range f.Sentinels {
		if s.Pid() == 0 {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		addr, err := sc.GetMasterAddrByName(ctx, f.opts.MasterName).Result()
		_ = sc.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names the master: %v", last)
}

// WaitPromoted waits until the Sentinels name a master other than old and
// that node answers as a master.
func (f *Failover) WaitPromoted(old string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := f.CurrentMaster(ctx)
		if err == nil && addr != old {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
			info, ierr := c.Info(ctx, "replication").Result()
			_ = c.Close()
			if ierr == nil && strings.Contains(info, "role:master") {
				cancel()
				return addr, nil
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no replica was promoted within %s", within)
}

func (f *Failover) waitReplicasInSync(within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, r := range f.Replicas {
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			info, err := c.Info(ctx, "replication").Result()
			cancel()
			if err == nil && strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				_ = c.Close()
				return fmt.Errorf("replica %s not in sync within %s", r.Addr(), within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = c.Close()
	}
	return nil
}

// waitSentinelsAgree waits until every Sentinel sees every replica and
// every other Sentinel, so that a failover can reach its quorum.
func (f *Failover) waitSentinelsAgree(within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, s := range f.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			m, err := sc.Master(ctx, f.opts.MasterName).Result()
			cancel()
			if err == nil && m["num-other-sentinels"] == strconv.Itoa(len(f.Sentinels)-1) &&
				m["num-slaves"] == strconv.Itoa(len(f.Replicas)) {
				break
			}
			if time.Now().After(deadline) {
				_ = sc.Close()
				return fmt.Errorf("sentinel %s does not see the others within %s: %v %v", s.Addr(), within, m, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = sc.Close()
	}
	return nil
}

// Stop stops every process; it is safe to call more than once.
func (f *Failover) Stop() {
	for _, s := range f.Sentinels {
		s.Stop()
	}
	for _, r := range f.Replicas {
		r.Stop()
	}
	if f.Master != nil {
		f.Master.Stop()
	}
}
