package jetstream

import (
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
)

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	check   func(c config) bool
	wantErr bool
}{
	{"defaults", nil, func(c config) bool {
		return c.URL == "nats://127.0.0.1:4222" && c.DurableName == "app" && c.AckWait == 30*time.Second &&
			c.MaxDeliver == -1 && c.StreamName == "my_pubsub" && c.Concurrency == 10
	}, false},
	{"single", map[string]string{"concurrency": "single", "streamName": "S"}, func(c config) bool {
		return c.Concurrency == 1 && c.StreamName == "S"
	}, false},
	{"bad ackWait", map[string]string{"ackWait": "later"}, nil, true},
	{"bad concurrency", map[string]string{"concurrency": "0"}, nil, true},
}

func TestParseConfig(t *testing.T) {
	for _, tt := range parseConfigCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "my.pubsub", AppID: "app", Properties: tt.props})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}
