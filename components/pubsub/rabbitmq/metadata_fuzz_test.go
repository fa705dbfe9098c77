package rabbitmq

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a URL,
// a consumer ID, a delivery mode of 0-2, an exchange kind and a handler.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
	}, func(c config) error {
		if c.URL == "" || c.ConsumerID == "" || c.DeliveryMode > 2 || c.Concurrency < 1 ||
			c.ExchangeKind != "fanout" && c.ExchangeKind != "topic" {
			return errors.New("URL, consumer ID, delivery mode, exchange kind or concurrency out of range")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"clientName", "concurrency", "connectionString", "consumerID", "deletedWhenUnused", "deliveryMode", "durable", "exchangeKind", "host", "hostname", "password", "prefetchCount", "protocol", "reconnectWait", "reconnectWaitSeconds", "username"}
