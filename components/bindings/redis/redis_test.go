package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
	"github.com/tandemrun/tandem/internal/redisconn/redistest"
)

const addr = "127.0.0.1:6379"

func meta() components.Metadata {
	return components.Metadata{Name: "r", Type: Type, Properties: map[string]string{"redisHost": addr}}
}

func TestContract(t *testing.T) {
	bindingstest.RequireServer(t, addr, "Redis")
	bindingstest.Run(t, bindingstest.Config{New: func() bindings.Binding { return New() }, Metadata: func(*testing.T) components.Metadata { return meta() }})
}

func TestOperations(t *testing.T) {
	bindingstest.RequireServer(t, addr, "Redis")
	raw := goredis.NewClient(&goredis.Options{Addr: addr})
	defer raw.Close()
	testOperations(t, meta(), raw)
}

// TestCluster runs the contract and the operations on a three-master
// Redis Cluster: every operation is on one key, so any key works.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	md := components.Metadata{Name: "r", Type: Type, Properties: map[string]string{"redisHost": c.Host(), "redisType": "cluster"}}
	bindingstest.Run(t, bindingstest.Config{New: func() bindings.Binding { return New() }, Metadata: func(*testing.T) components.Metadata { return md }})
	raw := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	defer raw.Close()
	for i := range 5 { // keys on different masters
		t.Run(fmt.Sprint("Operations", i), func(t *testing.T) { testOperations(t, md, raw) })
	}
}

// TestSentinel runs the contract through a sentinel, then fails the master
// over and runs the operations on the new one.
func TestSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	md := components.Metadata{Name: "r", Type: Type, Properties: map[string]string{
		"redisHost": sn.Sentinel, "failover": "true", "sentinelMasterName": redistest.MasterName,
	}}
	bindingstest.Run(t, bindingstest.Config{New: func() bindings.Binding { return New() }, Metadata: func(*testing.T) components.Metadata { return md }})
	b := New()
	if err := b.Init(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sn.Failover(t)
	raw := goredis.NewFailoverClient(&goredis.FailoverOptions{SentinelAddrs: []string{sn.Sentinel}, MasterName: redistest.MasterName})
	defer raw.Close()
	testOperations(t, md, raw)
	// The binding opened before the failover follows the new master.
	if _, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "create", Data: []byte("x"),
		Metadata: map[string]string{"key": "tandemtest-after-failover-" + bindingstest.RandomSuffix(), "ttlInSeconds": "60"}}); err != nil {
		t.Fatalf("create after failover: %v", err)
	}
}

func testOperations(t *testing.T, md components.Metadata, raw goredis.UniversalClient) {
	ctx := context.Background()
	b := New()
	if err := b.Init(ctx, md); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := "tandemtest-" + bindingstest.RandomSuffix()
	do := func(op string, data string, md map[string]string) *bindings.InvokeResponse {
		t.Helper()
		md["key"] = key
		resp, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: op, Data: []byte(data), Metadata: md})
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		return resp
	}
	do("create", "v1", map[string]string{"ttlInSeconds": "100"})
	if got := raw.Get(ctx, key).Val(); got != "v1" {
		t.Errorf("stored %q", got)
	}
	if ttl := raw.TTL(ctx, key).Val(); ttl <= 0 || ttl > 100*time.Second {
		t.Errorf("ttl %v", ttl)
	}
	if resp := do("get", "", map[string]string{}); string(resp.Data) != "v1" {
		t.Errorf("get = %q", resp.Data)
	}
	do("create", "5", map[string]string{})
	do("increment", "", map[string]string{})
	if got := raw.Get(ctx, key).Val(); got != "6" {
		t.Errorf("after increment %q", got)
	}
	if resp := do("get", "", map[string]string{"delete": "true"}); string(resp.Data) != "6" {
		t.Errorf("get and delete = %q", resp.Data)
	}
	if resp := do("get", "", map[string]string{}); len(resp.Data) != 0 {
		t.Errorf("missing key answered %q", resp.Data)
	}
	do("create", "x", map[string]string{})
	do("delete", "", map[string]string{})
	if n := raw.Exists(ctx, key).Val(); n != 0 {
		t.Error("delete left the key")
	}
	if _, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: "get", Metadata: map[string]string{}}); err == nil {
		t.Error("no key succeeded")
	}
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"redisHost": "localhost"}, false},
	{"all", map[string]string{"redisHost": "h:1", "redisPassword": "p", "redisDB": "2", "enableTLS": "true", "dialTimeout": "2s"}, false},
	{"no host", map[string]string{}, true},
	{"bad db", map[string]string{"redisHost": "h", "redisDB": "x"}, true},
	{"cluster", map[string]string{"redisHost": "a:1,b:2", "redisType": "cluster"}, false},
	{"sentinel", map[string]string{"redisHost": "s:26379", "failover": "true", "sentinelMasterName": "m"}, false},
	{"hosts without a topology", map[string]string{"redisHost": "a:1,b:2"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		cfg, err := parseConfig(components.Metadata{Name: "r", Properties: c.props})
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
		if c.name == "minimal" && cfg.Host != "localhost:6379" {
			t.Errorf("host %q", cfg.Host)
		}
	}
}
