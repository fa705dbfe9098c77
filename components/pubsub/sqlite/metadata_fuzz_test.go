package sqlite

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration names a
// database file, a consumer, where to start, and at least one handler.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
	}, func(c config) error {
		if c.connectionString == "" || c.consumerID == "" || c.concurrency < 1 ||
			c.startFrom != startEarliest && c.startFrom != startLatest {
			return errors.New("connection string, consumer, startFrom or concurrency out of range")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"busyTimeout", "cleanupInterval", "concurrency", "connectionString", "consumerID", "pollInterval", "processingTimeout", "retention", "startFrom", "timeout"}
