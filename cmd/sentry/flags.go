package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/sentry/ca"
)

// Options are sentry's command-line options (Dapr sentry's self-hosted
// flags plus Tandem's --workload-cert-ttl and --join-token-file).
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
}

// Dapr's defaults (cmd/sentry/options).
const (
	defaultCredentialsDir = "/var/run/secrets/dapr.io/credentials"
	defaultConfigName     = "daprsystem"
)

// ignoredDaprFlags are Dapr sentry flags Tandem accepts and ignores
// (Kubernetes, JWT/OIDC issuance, profiling). true marks boolean flags.
var ignoredDaprFlags = map[string]bool{
	"token-audience": false,
	"jwt-enabled":    true, "jwt-key-filename": false, "jwks-filename": false, "jwt-issuer": false,
	"jwt-signing-algorithm": false, "jwt-key-id": false, "jwt-ttl": false,
	"oidc-enabled": true, "oidc-server-listen-port": false, "oidc-server-listen-address": false,
	"oidc-server-tls-enabled": true, "oidc-server-tls-cert-file": false, "oidc-server-tls-key-file": false,
	"oidc-jwks-uri": false, "oidc-path-prefix": false, "oidc-allowed-hosts": false,
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
		if f.Name == "config" {
			o.ConfigExplicit = true
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
