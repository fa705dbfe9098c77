package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/components/configuration/configurationtest"
	"github.com/tandemrun/tandem/internal/redisconn"
	"github.com/tandemrun/tandem/internal/redisconn/redistest"
)

func TestContract(t *testing.T) {
	configurationtest.RequireServer(t, "127.0.0.1:6379", "Redis")
	raw := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer raw.Close()
	run(t, map[string]string{"redisHost": "127.0.0.1:6379"}, raw)
}

// TestContractCluster runs the contract on a three-master Redis Cluster
// (whose masters start without keyspace notifications, so Init must turn
// them on everywhere), then checks a subscription to every key sees
// changes on every master.
func TestContractCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	raw := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	defer raw.Close()
	props := map[string]string{"redisHost": c.Addrs[0], "redisType": "cluster"}
	run(t, props, raw)
	t.Run("SubscribeAllKeysOnEveryMaster", func(t *testing.T) {
		s := open(t, props)
		got := make(chan string, 64)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := s.Subscribe(ctx, nil, nil, func(_ context.Context, items map[string]*configuration.Item) error {
			for k := range items {
				got <- k
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		slots := map[int]bool{}
		for i := 0; len(want) < 12; i++ {
			key := fmt.Sprintf("cfgtest_all_%d_%s", i, configurationtest.RandomSuffix())
			want[key] = true
			slots[redisconn.Slot(key)*3/redisconn.Slots] = true // which third of the slots
			if err := raw.Set(ctx, key, "v", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if len(slots) < 2 {
			t.Fatalf("keys landed in %d thirds of the slots; the test needs several masters", len(slots))
		}
		for len(want) > 0 {
			select {
			case k := <-got:
				delete(want, k)
			case <-time.After(configurationtest.Timeout):
				t.Fatalf("no change seen for %v", want)
			}
		}
	})
}

// TestContractSentinel runs the contract through a sentinel, and checks a
// store opened before a failover reads from the new master.
func TestContractSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	raw := goredis.NewFailoverClient(&goredis.FailoverOptions{SentinelAddrs: []string{sn.Sentinel}, MasterName: redistest.MasterName})
	defer raw.Close()
	props := map[string]string{"redisHost": sn.Sentinel, "failover": "true", "sentinelMasterName": redistest.MasterName}
	run(t, props, raw)
	t.Run("GetAfterFailover", func(t *testing.T) {
		s := open(t, props)
		sn.Failover(t)
		ctx := context.Background()
		key := "cfgtest_failover_" + configurationtest.RandomSuffix()
		if err := raw.Set(ctx, key, "v||3", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		items, err := s.Get(ctx, []string{key}, nil)
		if err != nil || items[key] == nil || items[key].Version != "3" {
			t.Fatalf("get after failover = %v, %v", items, err)
		}
	})
}

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	s := New(nil)
	if err := s.Init(context.Background(), components.Metadata{Name: "cfg", Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func run(t *testing.T, props map[string]string, raw goredis.UniversalClient) {
	configurationtest.Run(t, func(t *testing.T) configuration.Store {
		s := New(nil)
		if err := s.Init(context.Background(), components.Metadata{Name: "cfg", Properties: props}); err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, key, value, version string) {
		ctx := context.Background()
		var err error
		switch {
		case value == "":
			err = raw.Del(ctx, key).Err()
		case version == "":
			err = raw.Set(ctx, key, value, 0).Err()
		default:
			err = raw.Set(ctx, key, value+"||"+version, 0).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Del(context.Background(), key) })
	})
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"redisHost": "localhost"}, false},
	{"all", map[string]string{"redisHost": "h:1", "redisPassword": "p", "redisDB": "3", "enableTLS": "false", "dialTimeout": "1s"}, false},
	{"no host", map[string]string{}, true},
	{"bad db", map[string]string{"redisHost": "h", "redisDB": "-1"}, true},
	{"cluster", map[string]string{"redisHost": "a:1,b:2", "redisType": "cluster"}, false},
	{"sentinel", map[string]string{"redisHost": "s:26379", "failover": "true", "sentinelMasterName": "m"}, false},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		if _, err := parseConfig(components.Metadata{Name: "cfg", Properties: c.props}); (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
	if it := split("v||3"); it.Value != "v" || it.Version != "3" {
		t.Errorf("split = %+v", it)
	}
}
