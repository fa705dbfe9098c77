package redis

import (
	"errors"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// host with a port, a consumer ID, and a queue depth and concurrency of at
// least 1.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
	}, func(c config) error {
		if !strings.Contains(c.Host, ":") || c.ConsumerID == "" || c.QueueDepth < 1 || c.Concurrency < 1 {
			return errors.New("host, consumer ID, queue depth or concurrency out of range")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"concurrency", "consumerID", "dialTimeout", "enableTLS", "failover", "maxLenApprox", "processingTimeout", "queueDepth", "redeliverInterval", "redisDB", "redisHost", "redisPassword", "redisType", "redisUsername", "sentinelMasterName", "sentinelPassword", "sentinelUsername"}
