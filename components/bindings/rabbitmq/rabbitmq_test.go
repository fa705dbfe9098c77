package rabbitmq

import (
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

func TestContract(t *testing.T) {
	bindingstest.RequireServer(t, "127.0.0.1:5672", "RabbitMQ")
	queue := "tandemtest-" + bindingstest.RandomSuffix()
	bindingstest.Run(t, bindingstest.Config{
		New: func() bindings.Binding { return New(nil) },
		Metadata: func(t *testing.T) components.Metadata {
			return components.Metadata{Name: "rmq", Type: Type, Properties: map[string]string{
				"host": "amqp://guest:guest@127.0.0.1:5672", "queueName": queue, "deleteWhenUnused": "false", "durable": "true",
			}}
		},
		Send: func(data []byte) *bindings.InvokeRequest {
			return &bindings.InvokeRequest{Operation: "create", Data: data, Metadata: map[string]string{"ttl": "60"}}
		},
	})
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"host": "amqp://localhost", "queueName": "q"}, false},
	{"no host", map[string]string{"queueName": "q"}, true},
	{"no queue", map[string]string{"host": "amqp://localhost"}, true},
	{"priority", map[string]string{"host": "amqp://localhost", "queueName": "q", "maxPriority": "300", "ttlInSeconds": "10", "prefetchCount": "5"}, false},
	{"bad priority", map[string]string{"host": "amqp://localhost", "queueName": "q", "maxPriority": "-1"}, true},
	{"bad pem", map[string]string{"host": "amqp://localhost", "queueName": "q", "caCert": "nope"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(components.Metadata{Name: "r", Properties: c.props})
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if c.name == "priority" && (cfg.MaxPriority != 255 || cfg.QueueTTL.Seconds() != 10 || cfg.PrefetchCount != 5) {
				t.Errorf("config = %+v", cfg)
			}
		})
	}
}
