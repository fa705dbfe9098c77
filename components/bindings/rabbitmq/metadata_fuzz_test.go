package rabbitmq

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a host,
// a queue and a positive reconnect wait.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"host", "queueName", "exclusive", "durable", "deleteWhenUnused", "prefetchCount", "maxPriority", "reconnectWaitInSeconds", "ttl", "ttlInSeconds", "caCert", "clientCert", "clientKey", "externalSasl"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if c.Host == "" || c.QueueName == "" || c.ReconnectWait <= 0 || c.MaxPriority > 255 {
			return errors.New("host, queue, reconnect wait or priority out of range")
		}
		return nil
	})
}
