package mqtt3

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// broker URL paho accepts, a topic and a client ID.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"url", "topic", "consumerID", "retain", "cleanSession", "backOffMaxRetries", "caCert", "clientCert", "clientKey"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if _, _, err := brokerURL(c.URL); err != nil || c.Topic == "" || c.ClientID == "" || c.BackOffMaxRetries < -1 {
			return errors.New("url, topic, client ID or retries out of range")
		}
		return nil
	})
}
