package mqtt3

import (
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestBrokerURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"tcp://h:1883", "tcp://h:1883"},
		{"mqtt://u:p@h:1883", "tcp://h:1883"},
		{"mqtts://h:8883", "ssl://h:8883"},
		{"tls://h:8883", "ssl://h:8883"},
	}
	for _, tt := range tests {
		_, got, err := brokerURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("brokerURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, _, err := brokerURL("not a url"); err == nil {
		t.Error("brokerURL accepted a URL without host")
	}
}

// badProps are metadata parseConfig refuses.
var badProps = []map[string]string{{"qos": "3"}, {"retain": "maybe"}, {"cleanSession": "x"}}

func TestParseConfig(t *testing.T) {
	c, err := parseConfig(components.Metadata{Name: "m", AppID: "app"})
	if err != nil || c.QoS != 1 || c.CleanSession || c.Retain || c.ClientID != "app" || c.URL != "tcp://127.0.0.1:1883" {
		t.Errorf("defaults = %+v, %v", c, err)
	}
	for _, props := range badProps {
		if _, err := parseConfig(components.Metadata{Name: "m", AppID: "app", Properties: props}); err == nil {
			t.Errorf("parseConfig(%v) accepted bad metadata", props)
		}
	}
	if _, err := parseConfig(components.Metadata{Name: "m"}); err == nil {
		t.Error("parseConfig accepted a missing client ID")
	}
}
