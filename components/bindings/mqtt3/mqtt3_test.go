package mqtt3

import (
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

func TestContract(t *testing.T) {
	bindingstest.RequireServer(t, "127.0.0.1:1883", "Mosquitto")
	suffix := bindingstest.RandomSuffix()
	bindingstest.Run(t, bindingstest.Config{
		New: func() bindings.Binding { return New(nil) },
		// Each binding gets its own client ID: the broker drops a
		// connection when another connects with its ID, and the previous
		// test's reader may not have left yet.
		Metadata: func(t *testing.T) components.Metadata {
			return components.Metadata{Name: "mq", Type: Type, Properties: map[string]string{
				"url": "tcp://127.0.0.1:1883", "topic": "tandemtest/" + suffix,
				"consumerID": "tandemtest-" + suffix + "-" + bindingstest.RandomSuffix(),
			}}
		},
		Send: func(data []byte) *bindings.InvokeRequest {
			return &bindings.InvokeRequest{Operation: "create", Data: data, Metadata: map[string]string{}}
		},
	})
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"url": "tcp://localhost:1883", "topic": "t", "consumerID": "c"}, false},
	{"mqtts", map[string]string{"url": "mqtts://localhost:8883", "topic": "t/#", "consumerID": "c", "retain": "true", "backOffMaxRetries": "3"}, false},
	{"no topic", map[string]string{"url": "tcp://localhost:1883", "consumerID": "c"}, true},
	{"no consumer", map[string]string{"url": "tcp://localhost:1883", "topic": "t"}, true},
	{"bad scheme", map[string]string{"url": "http://localhost:1883", "topic": "t", "consumerID": "c"}, true},
	{"bad retries", map[string]string{"url": "tcp://localhost:1883", "topic": "t", "consumerID": "c", "backOffMaxRetries": "-2"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(components.Metadata{Name: "m", Properties: c.props})
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if c.name == "mqtts" && (!cfg.Retain || cfg.BackOffMaxRetries != 3) {
				t.Errorf("config = %+v", cfg)
			}
		})
	}
}
