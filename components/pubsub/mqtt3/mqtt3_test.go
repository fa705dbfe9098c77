package mqtt3_test

import (
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/mqtt3"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
)

const addr = "127.0.0.1:1883"

func TestContract(t *testing.T) {
	pubsubtest.RequireServer(t, addr, "Mosquitto (MQTT)")
	clientID := "tandemtest-" + pubsubtest.RandomSuffix()
	t.Cleanup(func() {
		// Drop the persistent session the tests left on the broker.
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetCleanSession(true))
		if tok := c.Connect(); tok.Wait() && tok.Error() == nil {
			c.Disconnect(50)
		}
	})
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := mqtt3.New(nil)
		err := ps.Init(t.Context(), components.Metadata{
			Name: "mqtt-test", Type: mqtt3.Type, AppID: clientID,
			Properties: map[string]string{"url": "tcp://" + addr},
		})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	})
}
