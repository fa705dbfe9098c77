package rabbitmq_test

import (
	"context"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
	"github.com/tandemrun/tandem/components/pubsub/rabbitmq"
)

const (
	addr = "127.0.0.1:5672"
	url  = "amqp://guest:guest@" + addr + "/"
)

// topics remembers the exchanges a test touched so they and their queues
// can be deleted afterwards.
type topics struct {
	*rabbitmq.PubSub
	seen *sync.Map
}

func (w topics) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	w.seen.Store(req.Topic, true)
	return w.PubSub.Publish(ctx, req)
}

func (w topics) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	w.seen.Store(req.Topic, true)
	return w.PubSub.Subscribe(ctx, req, h)
}

func TestContract(t *testing.T) {
	pubsubtest.RequireServer(t, addr, "RabbitMQ")
	group := "tandemtest-" + pubsubtest.RandomSuffix()
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := rabbitmq.New(nil)
		err := ps.Init(t.Context(), components.Metadata{
			Name: "rabbitmq-test", Type: rabbitmq.Type, AppID: group,
			Properties: map[string]string{"connectionString": url},
		})
		if err != nil {
			t.Fatal(err)
		}
		w := topics{PubSub: ps, seen: &sync.Map{}}
		t.Cleanup(func() { cleanup(t, group, w.seen) })
		return w
	})
}

func cleanup(t *testing.T, group string, seen *sync.Map) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	seen.Range(func(k, _ any) bool {
		tp := k.(string)
		_, _ = ch.QueueDelete(group+"-"+tp, false, false, false)
		_ = ch.ExchangeDelete(tp, false, false)
		return true
	})
}
