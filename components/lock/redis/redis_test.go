package redis

import (
	"context"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
	"github.com/tandemrun/tandem/components/lock/locktest"
	"github.com/tandemrun/tandem/internal/redisconn/redistest"
)

func TestContract(t *testing.T) {
	locktest.RequireServer(t, "127.0.0.1:6379", "Redis")
	locktest.Run(t, func(t *testing.T) lock.Store {
		s := New()
		if err := s.Init(context.Background(), components.Metadata{Name: "lk", Properties: map[string]string{"redisHost": "127.0.0.1:6379"}}); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestContractSentinel runs the contract through a sentinel, then fails
// the master over and checks locks still work on the new one.
func TestContractSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	md := components.Metadata{Name: "lk", Properties: map[string]string{
		"redisHost": sn.Sentinel, "failover": "true", "sentinelMasterName": redistest.MasterName,
	}}
	open := func(t *testing.T) *Store {
		s := New()
		if err := s.Init(context.Background(), md); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	locktest.Run(t, func(t *testing.T) lock.Store { return open(t) })
	t.Run("Failover", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		key := "locktest-failover-" + locktest.RandomSuffix()
		if ok, err := s.TryLock(ctx, key, "a", 60); err != nil || !ok {
			t.Fatalf("lock before failover = %v, %v", ok, err)
		}
		sn.Failover(t)
		// Replication is asynchronous, so the lock may or may not have
		// survived; new locks must work on the new master.
		key2 := key + "-after"
		if ok, err := s.TryLock(ctx, key2, "b", 60); err != nil || !ok {
			t.Fatalf("lock after failover = %v, %v", ok, err)
		}
		if ok, err := s.TryLock(ctx, key2, "c", 60); err != nil || ok {
			t.Fatalf("second owner after failover = %v, %v; want refused", ok, err)
		}
		if st, err := s.Unlock(ctx, key2, "b"); err != nil || st != lock.Success {
			t.Fatalf("unlock after failover = %v, %v", st, err)
		}
	})
}

func TestClusterRefused(t *testing.T) {
	err := New().Init(context.Background(), components.Metadata{Name: "lk", Properties: map[string]string{"redisHost": "a:1,b:2", "redisType": "cluster"}})
	if err == nil || !strings.Contains(err.Error(), "single node") {
		t.Fatalf("init on a cluster: %v; want an error saying to use a single node or Sentinel", err)
	}
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"redisHost": "localhost"}, false},
	{"all", map[string]string{"redisHost": "h:1", "redisPassword": "p", "redisDB": "1", "enableTLS": "true"}, false},
	{"no host", map[string]string{}, true},
	{"cluster", map[string]string{"redisHost": "h", "redisType": "cluster"}, true},
	{"sentinel", map[string]string{"redisHost": "s1:26379,s2:26379", "failover": "true", "sentinelMasterName": "m"}, false},
	{"sentinel without master name", map[string]string{"redisHost": "s1:26379", "failover": "true"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		if _, err := parseConfig(components.Metadata{Name: "lk", Properties: c.props}); (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
}
