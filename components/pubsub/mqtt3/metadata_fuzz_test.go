package mqtt3

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// broker URL, a client ID and a QoS of 0-2. (A concurrency below 1 means
// the default, see pubsub.Concurrency.)
func FuzzParseConfig(f *testing.F) {
	seeds := append([]map[string]string{nil, {"url": "tcp://h:1883", "qos": "2", "retain": "true"}}, badProps...)
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
	}, func(c config) error {
		if c.URL == "" || c.ClientID == "" || c.QoS > 2 {
			return errors.New("URL, client ID or QoS out of range")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"cleanSession", "concurrency", "consumerID", "qos", "retain", "retained", "url"}
