package sqlite

import (
	"errors"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// connection string, table names that are safe to put in SQL, and a
// timeout of at least 1s.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range configCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if c.connectionString == "" || !validIdentifier(c.tableName) || !validIdentifier(c.metadataTableName) || c.timeout < time.Second {
			return errors.New("connection string, table names or timeout out of range")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"busyTimeout", "cleanupInterval", "cleanupIntervalInSeconds", "connectionString", "disableWAL", "metadataTableName", "tableName", "timeout", "timeoutInSeconds"}
