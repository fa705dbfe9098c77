package jetstream

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// durable name, a stream name and at least one handler.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
	}, func(c config) error {
		if c.DurableName == "" || c.StreamName == "" || c.Concurrency < 1 {
			return errors.New("durable name, stream name or concurrency missing")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"ackWait", "concurrency", "durableName", "maxAckPending", "maxDeliver", "memoryStorage", "name", "natsURL", "replicas", "streamName", "token"}
