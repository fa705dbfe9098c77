package postgresql

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// connection string, a safe table name and a positive timeout.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"connectionString", "table", "notifyChannel", "pgNotifyChannel", "timeout", "timeoutInSeconds"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if c.ConnectionString == "" || !allowedIdentifier.MatchString(c.Table) || c.Table == "" || c.Timeout <= 0 {
			return errors.New("connection string, table or timeout out of range")
		}
		return nil
	})
}
