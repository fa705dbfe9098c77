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
	group := "tandemtest-" + pubsubtest.RandomSuffix()
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := redis.New(nil)
		err := ps.Init(t.Context(), components.Metadata{
			Name: "redis-test", Type: redis.Type, AppID: group,
			Properties: map[string]string{
				"redisHost":         addr,
				"processingTimeout": "1s",
				"redeliverInterval": "200ms",
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		w := &topics{PubSub: ps}
		t.Cleanup(func() {
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			defer c.Close()
			w.seen.Range(func(tp, _ any) bool {
				c.Del(context.Background(), tp.(string))
				return true
			})
		})
		return w
	})
}
