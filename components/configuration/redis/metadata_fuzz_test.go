package redis

import (
	"errors"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a host
// with a port and a positive timeout.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"redisHost", "redisUsername", "redisPassword", "redisDB", "enableTLS", "dialTimeout", "redisType", "failover", "sentinelMasterName"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if !strings.Contains(c.Host, ":") || c.Timeout <= 0 || c.DB < 0 {
			return errors.New("host, timeout or db out of range")
		}
		return nil
	})
}
