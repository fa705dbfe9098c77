package vault

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tandemrun/tandem/components"
)

// Auth methods (vaultAuthMethod).
const (
	authToken      = "token"
	authAppRole    = "approle"
	authKubernetes = "kubernetes"
)

// Defaults, Dapr's where Dapr has the setting.
const (
	defaultAddr              = "https://127.0.0.1:8200"
	defaultEnginePath        = "secret"
	defaultKVPrefix          = "dapr"
	defaultAppRoleMount      = "approle"
	defaultKubernetesMount   = "kubernetes"
	defaultServiceAccountJWT = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// config is the parsed component metadata. It holds no file contents:
// parseConfig reads nothing but the metadata, and Init reads the files.
type config struct {
	Addr      string
	Namespace string
	TLS       tlsConfig

	EnginePath string
	// Prefix is the folder under the engine that secret names are relative
	// to, without slashes around it; empty when vaultKVUsePrefix is false.
	Prefix string
	// KVVersion is 1 or 2, or 0 to ask Vault which the mount is.
	KVVersion int
	// Text is vaultValueType text: a secret is one value, its data as text.
	Text bool

	Auth authConfig
}

type tlsConfig struct {
	CAPem, CAPath, CACert string
	SkipVerify            bool
	ServerName            string
}

type authConfig struct {
	Method string
	// Token auth: exactly one of Token and TokenPath.
	Token, TokenPath string
	// AppRole and Kubernetes auth: the auth mount and role.
	Mount, Role string
	// AppRole: the secret ID, inline or in a file (neither when the role
	// does not bind one). Kubernetes: JWTPath, the service account token.
	SecretID, SecretIDPath, JWTPath string
}

// parseConfig reads and checks the component's metadata.
func parseConfig(md components.Metadata) (config, error) {
	bad := func(format string, args ...any) (config, error) {
		return config{}, fmt.Errorf("component %q: "+format, append([]any{md.Name}, args...)...)
	}
	c := config{
		Addr:       strings.TrimRight(strings.TrimSpace(md.String("vaultAddr", defaultAddr)), "/"),
		Namespace:  strings.Trim(strings.TrimSpace(md.String("vaultNamespace", "")), "/"),
		EnginePath: strings.Trim(strings.TrimSpace(md.String("enginePath", defaultEnginePath)), "/"),
		TLS: tlsConfig{
			CAPem: md.String("caPem", ""), CAPath: md.String("caPath", ""), CACert: md.String("caCert", ""),
			ServerName: md.String("tlsServerName", ""),
		},
	}
	u, err := url.Parse(c.Addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("metadata %q: %q is not an http:// or https:// URL", "vaultAddr", c.Addr)
	}
	if c.EnginePath == "" {
		return bad("metadata %q must name a secrets engine mount", "enginePath")
	}
	if c.TLS.SkipVerify, err = md.Bool("skipVerify", false); err != nil {
		return config{}, err
	}
	usePrefix, err := md.Bool("vaultKVUsePrefix", true)
	if err != nil {
		return config{}, err
	}
	if usePrefix {
		c.Prefix = strings.Trim(strings.TrimSpace(md.String("vaultKVPrefix", defaultKVPrefix)), "/")
	}
	if badPath(c.EnginePath) || c.Prefix != "" && badPath(c.Prefix) {
		return bad("metadata %q / %q: empty, \".\" or \"..\" path segments are not allowed", "enginePath", "vaultKVPrefix")
	}
	switch v := strings.TrimSpace(md.String("vaultKVVersion", "")); v {
	case "":
	case "1", "v1":
		c.KVVersion = 1
	case "2", "v2":
		c.KVVersion = 2
	default:
		return bad("metadata %q: %q is not 1 or 2", "vaultKVVersion", v)
	}
	switch v := strings.ToLower(strings.TrimSpace(md.String("vaultValueType", "map"))); v {
	case "map":
	case "text":
		c.Text = true
	default:
		return bad("metadata %q: %q is not map or text", "vaultValueType", v)
	}
	if c.Auth, err = parseAuth(md); err != nil {
		return config{}, err
	}
	return c, nil
}

func parseAuth(md components.Metadata) (authConfig, error) {
	bad := func(format string, args ...any) (authConfig, error) {
		return authConfig{}, fmt.Errorf("component %q: "+format, append([]any{md.Name}, args...)...)
	}
	a := authConfig{
		Method:    strings.ToLower(strings.TrimSpace(md.String("vaultAuthMethod", authToken))),
		Token:     strings.TrimSpace(md.String("vaultToken", "")),
		TokenPath: md.String("vaultTokenMountPath", ""),
	}
	switch a.Method {
	case authToken:
		if a.Token == "" && a.TokenPath == "" {
			return bad("metadata %q or %q is required", "vaultToken", "vaultTokenMountPath")
		}
		if a.Token != "" && a.TokenPath != "" {
			return bad("metadata %q and %q are both set; set one", "vaultToken", "vaultTokenMountPath")
		}
		return a, nil
	case authAppRole:
		a.Mount = strings.Trim(strings.TrimSpace(md.String("vaultAppRoleMountPath", defaultAppRoleMount)), "/")
		a.Role = strings.TrimSpace(md.String("vaultAppRoleID", ""))
		a.SecretID = strings.TrimSpace(md.String("vaultAppRoleSecretID", ""))
		a.SecretIDPath = md.String("vaultAppRoleSecretIDPath", "")
		if a.Role == "" {
			return bad("metadata %q is required with vaultAuthMethod approle", "vaultAppRoleID")
		}
		if a.SecretID != "" && a.SecretIDPath != "" {
			return bad("metadata %q and %q are both set; set one", "vaultAppRoleSecretID", "vaultAppRoleSecretIDPath")
		}
	case authKubernetes:
		a.Mount = strings.Trim(strings.TrimSpace(md.String("vaultKubernetesMountPath", defaultKubernetesMount)), "/")
		a.Role = strings.TrimSpace(md.String("vaultKubernetesRole", ""))
		a.JWTPath = md.String("vaultServiceAccountTokenPath", defaultServiceAccountJWT)
		if a.Role == "" {
			return bad("metadata %q is required with vaultAuthMethod kubernetes", "vaultKubernetesRole")
		}
	default:
		return bad("metadata %q: %q is not token, approle or kubernetes", "vaultAuthMethod", a.Method)
	}
	if a.Token != "" || a.TokenPath != "" {
		return bad("metadata %q and %q are for vaultAuthMethod token only", "vaultToken", "vaultTokenMountPath")
	}
	if a.Mount == "" || badPath(a.Mount) {
		return bad("the auth mount path %q is not a Vault path", a.Mount)
	}
	return a, nil
}

// badPath reports whether a slash-separated path has an empty, "." or ".."
// segment, which would make Vault read another path than the one named.
func badPath(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
