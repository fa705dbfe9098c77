package vault

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has an
// http(s) address, an engine path and exactly one way to authenticate.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	names := []string{"vaultAddr", "vaultToken", "vaultTokenMountPath", "caPem", "caPath", "caCert", "skipVerify",
		"tlsServerName", "enginePath", "vaultKVPrefix", "vaultKVUsePrefix", "vaultKVVersion", "vaultValueType",
		"vaultNamespace", "vaultAuthMethod", "vaultAppRoleID", "vaultAppRoleSecretID", "vaultAppRoleSecretIDPath",
		"vaultAppRoleMountPath", "vaultKubernetesRole", "vaultKubernetesMountPath", "vaultServiceAccountTokenPath"}
	metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		switch {
		case c.Addr == "" || c.EnginePath == "" || badPath(c.EnginePath) || c.Prefix != "" && badPath(c.Prefix):
			return errors.New("address or paths out of range")
		case c.KVVersion < 0 || c.KVVersion > 2:
			return errors.New("KV version out of range")
		case c.Auth.Method == authToken && (c.Auth.Token == "") == (c.Auth.TokenPath == ""):
			return errors.New("token auth without exactly one token source")
		case c.Auth.Method != authToken && (c.Auth.Role == "" || c.Auth.Mount == "" || c.Auth.Token != "" || c.Auth.TokenPath != ""):
			return errors.New("login auth without a role and mount, or with a token")
		}
		return nil
	})
}
