package http

import (
	"errors"
	"net/url"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has an
// http(s) URL and no negative timeout.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"url", "securityToken", "securityTokenHeader", "responseTimeout", "maxResponseBodySize", "errorIfNot2XX", "mtlsRootCA", "mtlsClientCert", "mtlsClientKey", "mtlsRenegotiation"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || c.ResponseTimeout < 0 {
			return errors.New("url or timeout out of range")
		}
		return nil
	})
}
