package postgresql

import (
	"errors"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfigV1 and FuzzParseConfigV2: see metadatafuzz.Run; for both
// layouts, a parsed configuration has a connection string, table names that
// are safe to put in SQL, and a timeout of at least 1s.
func FuzzParseConfigV1(f *testing.F) { fuzzParseConfig(f, "v1") }

func FuzzParseConfigV2(f *testing.F) { fuzzParseConfig(f, "v2") }

func fuzzParseConfig(f *testing.F, version string) {
	var seeds []map[string]string
	for _, c := range configCases {
		seeds = append(seeds, c.props)
	}
	for _, c := range configV2Cases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Version: version, Properties: p}, version)
	}, func(c config) error {
		if c.connectionString == "" || !validIdentifier(c.tableName) || !validIdentifier(c.metadataTableName) || c.timeout < time.Second {
			return errors.New("connection string, table names or timeout out of range")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"cleanupInterval", "cleanupIntervalInSeconds", "connectionString", "metadataTableName", "tableName", "tablePrefix", "timeout", "timeoutInSeconds"}
