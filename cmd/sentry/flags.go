package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tandemrun/tandem/internal/flagvalue"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/jwtsvid"
)

// Options are sentry's command-line options (Dapr sentry's flags plus
// Tandem's --workload-cert-ttl, --join-token-file and friends).
type Options struct {
	ConfigPath      string
	ConfigExplicit  bool
	CredentialsDir  string
	RootCertFile    string
	IssuerCertFile  string
	IssuerKeyFile   string
	TrustDomain     string
	Port            int
	ListenAddress   string
	HealthzPort     int
	HealthzAddress  string
	MetricsPort     string
	MetricsAddress  string
	EnableMetrics   bool
	Mode            string
	Kubeconfig      string
	LogLevel        string
	LogAsJSON       bool
	WorkloadCertTTL time.Duration
	JoinTokenFile   string
	// ReloadInterval is how often the credential files are checked for
	// changes (0 disables reloading).
	ReloadInterval time.Duration
	// GenerateRootInto, if set, makes a new root and issuer in that folder
	// (for a root rotation) and exits.
	GenerateRootInto string
	Version          bool
	IgnoredDaprFlags map[string]string // flag name -> value, set but not implemented

	JWT  JWTOptions
	OIDC OIDCOptions
}

// JWTOptions are Dapr sentry's --jwt-* flags: JWT SVIDs issued with every
// certificate.
type JWTOptions struct {
	Enabled   bool
	KeyFile   string // relative to --issuer-credentials unless absolute
	JWKSFile  string // likewise
	Issuer    string // iss claim; none if empty
	IssuerSet bool
	Algorithm string
	KeyID     string // kid; the key's thumbprint if empty
	TTL       time.Duration
}

// OIDCOptions are Dapr sentry's --oidc-* flags: the discovery server.
type OIDCOptions struct {
	Enabled      bool
	Port         int
	Address      string
	TLSEnabled   bool
	TLSCertFile  string
	TLSKeyFile   string
	JWKSURI      string
	PathPrefix   string
	AllowedHosts []string
}

// Dapr's defaults (cmd/sentry/options).
const (
	defaultCredentialsDir = "/var/run/secrets/dapr.io/credentials"
	defaultConfigName     = "daprsystem"
)

// ignoredDaprFlags are Dapr sentry flags Tandem accepts and ignores
// (the unused --token-audience, profiling). true marks boolean flags.
var ignoredDaprFlags = map[string]bool{
	"token-audience":   false,
	"enable-profiling": true, "profile-port": false,
}

// ignoredFlag records the value of a flag Tandem does not implement.
type ignoredFlag struct {
	name   string
	isBool bool
	set    map[string]string
}

func (f *ignoredFlag) String() string   { return "" }
func (f *ignoredFlag) IsBoolFlag() bool { return f.isBool }
func (f *ignoredFlag) Set(v string) error {
	f.set[f.name] = v
	return nil
}

// ParseFlags parses args (without the program name). Both -flag and --flag
// work, as with Dapr's sentry.
func ParseFlags(args []string, usageOut io.Writer) (*Options, error) {
	o := &Options{IgnoredDaprFlags: map[string]string{}}
	fs := flag.NewFlagSet("sentry", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&o.ConfigPath, "config", defaultConfigName, "Path to a Dapr Configuration file; spec.mtls.workloadCertTTL and allowedClockSkew are used")
	fs.StringVar(&o.CredentialsDir, "issuer-credentials", defaultCredentialsDir, "Folder holding the CA files; generated there if empty")
	fs.StringVar(&o.RootCertFile, "issuer-ca-filename", ca.DefaultRootCertFilename, "Trust anchors file (one or more PEM roots), relative to --issuer-credentials unless absolute")
	fs.StringVar(&o.IssuerCertFile, "issuer-certificate-filename", ca.DefaultIssuerCertFilename, "Issuer certificate file")
	fs.StringVar(&o.IssuerKeyFile, "issuer-key-filename", ca.DefaultIssuerKeyFilename, "Issuer private key file")
	fs.StringVar(&o.TrustDomain, "trust-domain", "localhost", "Sentry's trust domain (daprd's --control-plane-trust-domain)")
	fs.IntVar(&o.Port, "port", 50001, "Port of the CA gRPC service")
	fs.StringVar(&o.ListenAddress, "listen-address", "", "Address of the CA gRPC service (all interfaces if empty)")
	fs.IntVar(&o.HealthzPort, "healthz-port", 8080, "Port of the /healthz endpoint")
	fs.StringVar(&o.HealthzAddress, "healthz-listen-address", "", "Address of the /healthz endpoint (all interfaces if empty)")
	fs.StringVar(&o.MetricsPort, "metrics-port", "9090", "Port of the Prometheus /metrics endpoint")
	fs.StringVar(&o.MetricsAddress, "metrics-listen-address", "", "Address of the /metrics endpoint (all interfaces if empty)")
	fs.BoolVar(&o.EnableMetrics, "enable-metrics", true, "Serve Prometheus metrics")
	fs.StringVar(&o.Mode, "mode", "standalone", "Runtime mode: standalone (credentials in --issuer-credentials) or kubernetes (in the dapr-trust-bundle Secret; pods' service account tokens validated)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig for --mode kubernetes (in-cluster configuration if empty)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "Log level: debug, info, warn, error or fatal")
	fs.BoolVar(&o.LogAsJSON, "log-as-json", false, "Log in JSON")
	fs.DurationVar(&o.WorkloadCertTTL, "workload-cert-ttl", 0, "Lifetime of workload certificates (overrides the Configuration; e.g. 5s for tests)")
	fs.StringVar(&o.JoinTokenFile, "join-token-file", "", "File of join tokens, one per line (\"TOKEN\" or \"TOKEN app1,app2\"); enables the join-token validator")
	fs.DurationVar(&o.ReloadInterval, "issuer-credentials-reload-interval", ca.DefaultReloadInterval, "How often the CA files are checked for changes and reloaded without a restart (0 disables)")
	fs.StringVar(&o.GenerateRootInto, "generate-root-into", "", "Write a new self-signed root and an issuer signed by it (ca.crt, issuer.crt, issuer.key) into this folder and exit; used to rotate the root (see docs/trust-anchor-rotation.md)")
	fs.BoolVar(&o.Version, "version", false, "Print the version and exit")
	fs.BoolVar(&o.JWT.Enabled, "jwt-enabled", false, "Issue a JWT SVID with every certificate (signing key and JWKS generated in the issuer credentials if absent)")
	fs.StringVar(&o.JWT.KeyFile, "jwt-key-filename", jwtsvid.DefaultKeyFilename, "JWT signing key file (PEM), relative to --issuer-credentials unless absolute")
	fs.StringVar(&o.JWT.JWKSFile, "jwks-filename", jwtsvid.DefaultJWKSFilename, "JWKS (JSON Web Key Set) file holding the signing key's public key, relative to --issuer-credentials unless absolute")
	fs.StringVar(&o.JWT.Issuer, "jwt-issuer", "", "Issuer (iss) of JWT SVIDs and of the OIDC discovery document (no iss claim if empty)")
	fs.StringVar(&o.JWT.Algorithm, "jwt-signing-algorithm", jwtsvid.DefaultAlgorithm, "JWS algorithm of JWT SVIDs; must suit the signing key (RS*, PS*, ES*, EdDSA)")
	fs.StringVar(&o.JWT.KeyID, "jwt-key-id", "", "Key ID (kid) of JWT SVIDs; the JWKS must hold it (default: base64 of the signing key's SHA-256 JWK thumbprint)")
	fs.DurationVar(&o.JWT.TTL, "jwt-ttl", jwtsvid.DefaultTTL, "Lifetime of JWT SVIDs")
	fs.BoolVar(&o.OIDC.Enabled, "oidc-enabled", false, "Serve OIDC discovery (/.well-known/openid-configuration, /jwks.json) for the JWT SVIDs (needs --jwt-enabled)")
	fs.IntVar(&o.OIDC.Port, "oidc-server-listen-port", 9080, "Port of the OIDC server")
	fs.StringVar(&o.OIDC.Address, "oidc-server-listen-address", "localhost", "Address of the OIDC server")
	fs.BoolVar(&o.OIDC.TLSEnabled, "oidc-server-tls-enabled", true, "Require --oidc-server-tls-cert-file and --oidc-server-tls-key-file (HTTPS); false allows plain HTTP")
	fs.StringVar(&o.OIDC.TLSCertFile, "oidc-server-tls-cert-file", "", "TLS certificate file of the OIDC server (HTTPS when given with the key file)")
	fs.StringVar(&o.OIDC.TLSKeyFile, "oidc-server-tls-key-file", "", "TLS key file of the OIDC server")
	fs.StringVar(&o.OIDC.JWKSURI, "oidc-jwks-uri", "", "jwks_uri of the discovery document (derived from the issuer or the request if empty)")
	fs.StringVar(&o.OIDC.PathPrefix, "oidc-path-prefix", "", "Path prefix of the OIDC endpoints")
	fs.Var(flagvalue.NewList(&o.OIDC.AllowedHosts), "oidc-allowed-hosts", "Hosts the OIDC server answers for, comma-separated (any if empty; * allows any); X-Forwarded-Host is trusted only when it matches one")
	for name, isBool := range ignoredDaprFlags {
		fs.Var(&ignoredFlag{name: name, isBool: isBool, set: o.IgnoredDaprFlags}, name, "Dapr sentry flag accepted for compatibility and ignored")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: sentry takes only flags", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "config":
			o.ConfigExplicit = true
		case "jwt-issuer":
			o.JWT.IssuerSet = true
		}
	})
	return o, o.Validate()
}

// Validate checks option values.
func (o *Options) Validate() error {
	var errs []error
	switch strings.ToLower(o.Mode) {
	case "standalone", "", "kubernetes":
	default:
		errs = append(errs, fmt.Errorf("--mode %q is not valid; use standalone or kubernetes", o.Mode))
	}
	if _, err := logging.ParseLevel(o.LogLevel); err != nil {
		errs = append(errs, err)
	}
	for name, p := range map[string]int{"--port": o.Port, "--healthz-port": o.HealthzPort} {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d is not a port number", name, p))
		}
	}
	if o.WorkloadCertTTL < 0 {
		errs = append(errs, errors.New("--workload-cert-ttl must not be negative"))
	}
	if o.ReloadInterval < 0 {
		errs = append(errs, errors.New("--issuer-credentials-reload-interval must not be negative"))
	}
	if o.OIDC.Enabled && o.OIDC.TLSEnabled && (o.OIDC.TLSCertFile == "" || o.OIDC.TLSKeyFile == "") {
		errs = append(errs, errors.New("--oidc-server-tls-cert-file and --oidc-server-tls-key-file are required with --oidc-enabled (unless --oidc-server-tls-enabled=false)"))
	}
	if (o.OIDC.TLSCertFile == "") != (o.OIDC.TLSKeyFile == "") {
		errs = append(errs, errors.New("--oidc-server-tls-cert-file and --oidc-server-tls-key-file go together"))
	}
	if o.JWT.IssuerSet && !o.JWT.Enabled {
		errs = append(errs, errors.New("--jwt-issuer cannot be set without --jwt-enabled"))
	}
	if o.JWT.TTL <= 0 {
		errs = append(errs, errors.New("--jwt-ttl must be positive"))
	}
	if o.OIDC.Port < 0 || o.OIDC.Port > 65535 {
		errs = append(errs, fmt.Errorf("--oidc-server-listen-port %d is not a port number", o.OIDC.Port))
	}
	if o.CredentialsDir == "" {
		errs = append(errs, errors.New("--issuer-credentials must name a folder"))
	}
	return errors.Join(errs...)
}

// ignoredNames lists the set-but-ignored Dapr flags, sorted.
func (o *Options) ignoredNames() []string {
	names := make([]string, 0, len(o.IgnoredDaprFlags))
	for n := range o.IgnoredDaprFlags {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
