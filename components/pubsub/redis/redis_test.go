package redis_test

import (
	"context"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
	"github.com/tandemrun/tandem/components/pubsub/redis"
	"github.com/tandemrun/tandem/internal/redisconn/redistest"
)

const addr = "127.0.0.1:6379"

// topics wraps the broker to remember the streams a test touched, so they
// can be deleted afterwards.
type topics struct {
	*redis.PubSub
	seen sync.Map
}

func (w *topics) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	w.seen.Store(req.Topic, true)
	return w.PubSub.Publish(ctx, req)
}

func (w *topics) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	w.seen.Store(req.Topic, true)
	return w.PubSub.Subscribe(ctx, req, h)
}

func TestContract(t *testing.T) {
	pubsubtest.RequireServer(t, addr, "Redis")
	raw := goredis.NewClient(&goredis.Options{Addr: addr})
	defer raw.Close()
	run(t, map[string]string{"redisHost": addr}, raw)
}

// TestContractCluster runs the contract on a three-master Redis Cluster:
// each topic is one stream, on whichever master owns its slot.
func TestContractCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	raw := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
	defer raw.Close()
	run(t, map[string]string{"redisHost": c.Host(), "redisType": "cluster"}, raw)
}

// TestContractSentinel runs the contract through a sentinel, then checks a
// subscriber and a publisher opened before a failover carry on after it:
// what was published before reaches the subscriber, and so does what is
// published after.
func TestContractSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	raw := goredis.NewFailoverClient(&goredis.FailoverOptions{SentinelAddrs: []string{sn.Sentinel}, MasterName: redistest.MasterName})
	defer raw.Close()
	props := map[string]string{"redisHost": sn.Sentinel, "failover": "true", "sentinelMasterName": redistest.MasterName}
	open := run(t, props, raw)
	t.Run("Failover", func(t *testing.T) {
		ps := open(t)
		topic := "tandemtest-failover-" + pubsubtest.RandomSuffix()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var mu sync.Mutex
		got := map[string]bool{}
		if err := ps.Subscribe(ctx, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
			mu.Lock()
			got[string(m.Data)] = true
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		publish := func(data string) {
			t.Helper()
			if err := ps.Publish(ctx, &pubsub.PublishRequest{Topic: topic, Data: []byte(data)}); err != nil {
				t.Fatalf("publish %s: %v", data, err)
			}
		}
		seen := func(data string) func() bool {
			return func() bool { mu.Lock(); defer mu.Unlock(); return got[data] }
		}
		publish("before")
		pubsubtest.Eventually(t, "the message published before the failover", seen("before"))
		sn.Failover(t)
		publish("after")
		pubsubtest.Eventually(t, "the message published after the failover", seen("after"))
	})
}

// run runs the contract with the given metadata; raw deletes the streams
// afterwards. It returns the opener, for more tests.
func run(t *testing.T, props map[string]string, raw goredis.UniversalClient) func(t *testing.T) pubsub.PubSub {
	group := "tandemtest-" + pubsubtest.RandomSuffix()
	open := func(t *testing.T) pubsub.PubSub {
		ps := redis.New(nil)
		p := map[string]string{"processingTimeout": "1s", "redeliverInterval": "200ms"}
		for k, v := range props {
			p[k] = v
		}
		if err := ps.Init(t.Context(), components.Metadata{Name: "redis-test", Type: redis.Type, AppID: group, Properties: p}); err != nil {
			t.Fatal(err)
		}
		w := &topics{PubSub: ps}
		t.Cleanup(func() {
			w.seen.Range(func(tp, _ any) bool {
				raw.Del(context.Background(), tp.(string))
				return true
			})
		})
		return w
	}
	pubsubtest.Run(t, open)
	return func(t *testing.T) pubsub.PubSub {
		ps := open(t)
		t.Cleanup(func() { _ = ps.Close() })
		return ps
	}
}
