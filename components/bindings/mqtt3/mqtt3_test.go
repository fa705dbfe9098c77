package mqtt3

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

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

// Read returns only once the subscription its connect handler started has
// returned, also when Read is stopped just as the client connects (paho's
// Subscribe then waits on a connection that Disconnect closed under it).
func TestReadStoppedAtConnectLeavesNoSubscribe(t *testing.T) {
	bindingstest.RequireServer(t, "127.0.0.1:1883", "Mosquitto")
	suffix := bindingstest.RandomSuffix()
	b := New(nil)
	if err := b.Init(context.Background(), components.Metadata{Name: "mq", Type: Type, Properties: map[string]string{
		"url": "tcp://127.0.0.1:1883", "topic": "tandemtest/" + suffix, "consumerID": "tandemtest-" + suffix,
	}}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	handler := func(context.Context, *bindings.Event) ([]byte, error) { return nil, nil }
	before := goleak.IgnoreCurrent()
	for i := range 40 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Read(ctx, handler) }()
		time.Sleep(time.Duration(i) * 100 * time.Microsecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Read: %v", err)
		}
		// Only a Subscribe left behind is this test's business; paho's
		// other goroutines end on their own after Disconnect.
		if err := goleak.Find(before); err != nil {
			if strings.Contains(err.Error(), "(*client).Subscribe") {
				t.Fatalf("round %d: a Subscribe outlived Read: %v", i, err)
			}
		}
	}
}
