// Package redistest starts real Redis topologies for tests: a three-master
// Redis Cluster (StartCluster) and a master with a replica watched by a
// sentinel (StartSentinel), each on free loopback ports with its files in
// the test's temporary directory, and stopped by t.Cleanup.
//
// It runs the redis-server and redis-cli binaries from PATH. When they are
// missing the test is skipped, or fails when the environment variable CI is
// "true" (a CI machine must have them, so a missing one is a broken setup).
// Only tests import this package.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinel monitors the master under
// (metadata sentinelMasterName).
const MasterName = "mymaster"

// startTimeout bounds how long a topology may take to come up.
const startTimeout = 30 * time.Second

// Require skips the test, or fails it under CI=true, when redis-server or
// redis-cli is not installed.
func Require(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (%v): CI=true requires it; install Redis (e.g. apt-get install redis-server)", bin, err)
			}
			t.Skipf("%s is not installed (%v): install Redis to run this test (CI=true turns this skip into a failure)", bin, err)
		}
	}
}

// Cluster is a running three-master Redis Cluster without replicas.
type Cluster struct {
	Addrs []string // the masters' host:port
}

// Host is the redisHost value for the cluster: every master, comma-separated.
func (c *Cluster) Host() string { return strings.Join(c.Addrs, ",") }

// StartCluster starts three cluster-enabled servers, joins them with
// redis-cli --cluster create and waits until every node reports
// cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	c := &Cluster{}
	for i := range 3 {
		addr := startServer(t, dir, fmt.Sprintf("cluster%d", i), func(port int) []string {
			bus := freePort(t)
			return []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
				"--cluster-port", strconv.Itoa(bus),
				"--cluster-node-timeout", "5000",
			}
		})
		c.Addrs = append(c.Addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range c.Addrs {
		waitFor(ctx, t, a, "cluster_state:ok and three known nodes", func(cl *goredis.Client) (bool, error) {
			info, err := cl.ClusterInfo(ctx).Result()
			return strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3"), err
		})
	}
	return c
}

// Sentinel is a running master, its replica, and one sentinel monitoring
// the master as MasterName with quorum 1.
type Sentinel struct {
	Sentinel string // the sentinel's host:port (metadata redisHost)
	Master   string // the master when started; see CurrentMaster after a failover
	Replica  string // the replica when started
}

// StartSentinel starts the master, the replica (and waits until it is in
// sync), then the sentinel (and waits until it knows the replica, which a
// failover needs).
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	s := &Sentinel{}
	// No delay before the first full sync: the replica is in sync at once.
	s.Master = startServer(t, dir, "master", func(int) []string { return []string{"--repl-diskless-sync-delay", "0"} })
	mhost, mport, _ := net.SplitHostPort(s.Master)
	s.Replica = startServer(t, dir, "replica", func(int) []string { return []string{"--replicaof", mhost, mport, "--repl-diskless-sync-delay", "0"} })
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	waitFor(ctx, t, s.Replica, "replication link up", func(cl *goredis.Client) (bool, error) {
		info, err := cl.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up"), err
	})
	s.Sentinel = startServer(t, dir, "sentinel", func(port int) []string {
		// A sentinel rewrites its configuration file, so it needs one.
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		body := fmt.Sprintf("sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %[1]s 2000\nsentinel failover-timeout %[1]s 10000\n", MasterName, mhost, mport)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{conf, "--sentinel"}
	})
	// SENTINEL FAILOVER answers NOGOODSLAVE until the sentinel is connected
	// to the replica and has its INFO (with the link to the master up).
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: s.Sentinel, MaxRetries: -1})
	defer sc.Close()
	var last []map[string]string
	for {
		reps, err := sc.Replicas(ctx, MasterName).Result()
		if err == nil && len(reps) == 1 && goodReplica(reps[0]) {
			return s
		}
		last = reps
		select {
		case <-ctx.Done():
			t.Fatalf("the sentinel does not see a replica fit for a failover: %v (last error %v)", last, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// goodReplica reports whether a SENTINEL REPLICAS entry is one the sentinel
// would promote: connected, not down, its INFO fresh, its link up.
func goodReplica(r map[string]string) bool {
	refresh, err := strconv.Atoi(r["info-refresh"])
	return r["flags"] == "slave" && r["master-link-status"] == "ok" && err == nil && refresh < 5000
}

// CurrentMaster asks the sentinel for the master's address.
func (s *Sentinel) CurrentMaster(ctx context.Context) (string, error) {
	cl := goredis.NewSentinelClient(&goredis.Options{Addr: s.Sentinel})
	defer cl.Close()
	hp, err := cl.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel answered %v", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover runs SENTINEL FAILOVER and waits until the sentinel names the
// former replica as master and that server accepts writes; it returns the
// new master's address.
func (s *Sentinel) Failover(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	old, err := s.CurrentMaster(ctx)
	if err != nil {
		t.Fatalf("ask the sentinel for the master: %v", err)
	}
	cl := goredis.NewSentinelClient(&goredis.Options{Addr: s.Sentinel})
	defer cl.Close()
	if err := cl.Failover(ctx, MasterName).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	var now string
	for {
		if now, err = s.CurrentMaster(ctx); err == nil && now != old {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sentinel still names %s as master after SENTINEL FAILOVER (last error %v)", old, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(ctx, t, now, "the new master reports role master", func(cl *goredis.Client) (bool, error) {
		info, err := cl.Info(ctx, "replication").Result()
		return strings.Contains(info, "role:master"), err
	})
	return now
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts redis-server on a free port with the arguments args
// returns for that port, waits until it answers PING, and stops it at
// cleanup. Another process may take the port between the check and the
// start, so a server that exits early is retried on a new port.
func startServer(t testing.TB, dir, name string, args func(port int) []string) string {
	t.Helper()
	var lastErr error
	for range 5 {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		logFile := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, port))
		a := args(port)
		// A configuration file, when given, must come first.
		var argv []string
		if len(a) > 0 && strings.HasSuffix(a[0], ".conf") {
			argv, a = append(argv, a[0]), a[1:]
		}
		argv = append(argv, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", logFile)
		argv = append(argv, a...)
		cmd := exec.Command("redis-server", argv...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		err := waitPing(ctx, addr, exited, &waitErr)
		cancel()
		if err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("%s (%s) log:\n%s", name, addr, tail(logFile, 20))
				}
			})
			return addr
		}
		stop()
		lastErr = fmt.Errorf("%w; log:\n%s", err, tail(logFile, 20))
	}
	t.Fatalf("redis-server %s did not start: %v", name, lastErr)
	return ""
}

// waitPing waits until addr answers PING, the process exits, or ctx ends.
func waitPing(ctx context.Context, addr string, exited <-chan struct{}, waitErr *error) error {
	cl := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer cl.Close()
	for {
		if err := cl.Ping(ctx).Err(); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited: %v", addr, *waitErr)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s does not answer PING", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor polls cond with a client of addr until it is true; it fails the
// test when ctx ends first.
func waitFor(ctx context.Context, t testing.TB, addr, what string, cond func(*goredis.Client) (bool, error)) {
	t.Helper()
	cl := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer cl.Close()
	var err error
	for {
		var ok bool
		if ok, err = cond(cl); ok {
			return
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("condition not met")
			}
			t.Fatalf("%s: waiting for %s: %v", addr, what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file, for failure reports.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
