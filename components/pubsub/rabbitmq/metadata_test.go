package rabbitmq

import (
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	check   func(c config) bool
	wantErr bool
}{
	{"defaults keep messages", nil, func(c config) bool {
		return c.URL == "amqp://guest:guest@127.0.0.1:5672/" && c.Durable && !c.DeletedWhenUnused &&
			c.DeliveryMode == 2 && c.ExchangeKind == "fanout" && c.ConsumerID == "app" && c.Concurrency == 10
	}, false},
	{"connection string wins", map[string]string{"connectionString": "amqp://u:p@h:1/", "hostname": "x"}, func(c config) bool {
		return c.URL == "amqp://u:p@h:1/"
	}, false},
	{"host alias", map[string]string{"host": "amqp://h/"}, func(c config) bool { return c.URL == "amqp://h/" }, false},
	{"single concurrency", map[string]string{"concurrency": "single"}, func(c config) bool { return c.Concurrency == 1 }, false},
	{"numeric concurrency", map[string]string{"concurrency": "4"}, func(c config) bool { return c.Concurrency == 4 }, false},
	{"bad concurrency", map[string]string{"concurrency": "lots"}, nil, true},
	{"bad delivery mode", map[string]string{"deliveryMode": "3"}, nil, true},
	{"bad exchange kind", map[string]string{"exchangeKind": "headers"}, nil, true},
}

func TestParseConfig(t *testing.T) {
	for _, tt := range parseConfigCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "q", AppID: "app", Properties: tt.props})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}

func TestRedactHidesPassword(t *testing.T) {
	got := redact("amqp://user:s3cret@host:5672/")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "host:5672") {
		t.Errorf("redact = %q", got)
	}
}
