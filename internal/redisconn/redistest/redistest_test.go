package redistest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/internal/redisconn"
)

// TestMain fails the package's tests when a goroutine they started is still
// running after the last one (a server's waiter, a client).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCluster checks the cluster serves every slot and that Slot agrees
// with the servers' CLUSTER KEYSLOT.
func TestCluster(t *testing.T) {
	c := StartCluster(t)
	ctx := context.Background()
	cl := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	defer cl.Close()
	for _, k := range []string{"a", "foo", "statetest-{ab12}||x", "{}x", "app||{order-1}-items", "\xff\x00"} {
		want, err := cl.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisconn.Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, server says %d", k, got, want)
		}
		if err := cl.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Errorf("set %q: %v", k, err)
		}
	}
	var n atomic.Int32 // ForEachMaster calls concurrently
	if err := cl.ForEachMaster(ctx, func(context.Context, *goredis.Client) error { n.Add(1); return nil }); err != nil || n.Load() != 3 {
		t.Fatalf("masters = %d, %v; want 3", n.Load(), err)
	}
}

// TestSentinelFailover checks a failover moves the master to the replica.
func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t)
	ctx := context.Background()
	if m, err := s.CurrentMaster(ctx); err != nil || m != s.Master {
		t.Fatalf("master = %s, %v; want %s", m, err, s.Master)
	}
	if now := s.Failover(t); now != s.Replica {
		t.Fatalf("after failover the master is %s, want the replica %s", now, s.Replica)
	}
	cl := goredis.NewClient(&goredis.Options{Addr: s.Replica})
	defer cl.Close()
	if info := cl.Info(ctx, "replication").Val(); !strings.Contains(info, "role:master") {
		t.Fatalf("the former replica is not master:\n%s", info)
	}
}
