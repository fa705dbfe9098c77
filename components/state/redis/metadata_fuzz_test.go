package redis

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has an
// address and speaks RESP2.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range configCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if len(c.opts.Addrs) == 0 || c.opts.Protocol != 2 {
			return errors.New("no address, or not RESP2")
		}
		return nil
	})
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"dialTimeout", "enableTLS", "failover", "sentinelMasterName", "sentinelPassword", "sentinelUsername", "insecureSkipTLSVerify", "insecureSkipVerify", "minIdleConns", "poolSize", "poolTimeout", "readTimeout", "redisDB", "redisHost", "redisMaxRetries", "redisMaxRetryInterval", "redisMinRetryInterval", "redisPassword", "redisType", "redisUsername", "ttlInSeconds", "writeTimeout"}
