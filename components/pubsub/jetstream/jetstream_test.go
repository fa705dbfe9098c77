package jetstream_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/jetstream"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
)

const addr = "127.0.0.1:4222"

func TestContract(t *testing.T) {
	pubsubtest.RequireServer(t, addr, "NATS with JetStream")
	suffix := pubsubtest.RandomSuffix()
	stream := "tandemtest_" + suffix
	t.Cleanup(func() {
		nc, err := nats.Connect("nats://" + addr)
		if err != nil {
			return
		}
		defer nc.Close()
		if j, err := js.New(nc); err == nil {
			_ = j.DeleteStream(context.Background(), stream)
		}
	})
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := jetstream.New(nil)
		err := ps.Init(t.Context(), components.Metadata{
			Name: "jetstream-test", Type: jetstream.Type, AppID: "app-" + suffix,
			Properties: map[string]string{
				"natsURL":       "nats://" + addr,
				"streamName":    stream,
				"ackWait":       "2s",
				"memoryStorage": "true",
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	})
}
