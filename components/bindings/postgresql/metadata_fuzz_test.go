package postgresql

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// connection string and a positive timeout.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"connectionString", "url", "timeout", "timeoutInSeconds", "maxConns", "connectionMaxIdleTime", "queryExecMode"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if c.ConnectionString == "" || c.Timeout <= 0 || c.MaxConns < 0 {
			return errors.New("connection string, timeout or maxConns out of range")
		}
		return nil
	})
}
