package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tandemrun/tandem/internal/logging"
)

// Options are the operator's command-line options: Dapr operator's flags
// (cmd/operator/options), plus Tandem's --sentry-address and
// --sentry-token-file for what Dapr reads from the daprsystem
// Configuration and the pod.
type Options struct {
	Config                   string
	DisableLeaderElection    bool
	DisableServiceReconciler bool
	WatchNamespace           string
	TrustAnchorsFile         string
	Port                     int
	ListenAddress            string
	HealthzPort              int
	HealthzListenAddress     string
	MetricsPort              string
	MetricsListenAddress     string
	EnableMetrics            bool
	CacheSyncPeriod          time.Duration
	LogLevel                 string
	LogAsJSON                bool
	Kubeconfig               string
	SentryAddress            string
	SentryTokenFile          string
	Version                  bool
	// XDSPort, when not 0, serves xDS for proxyless gRPC apps (package xds).
	XDSPort        int
	XDSTrustDomain string
	// WebhookPort serves the conversion webhook (0: off).
	WebhookPort          int
	WebhookListenAddress string
	Ignored              map[string]string // Dapr flags accepted and not implemented
}

// Dapr's defaults.
const (
	defaultTrustAnchorsFile = "/var/run/secrets/dapr.io/tls/ca.crt"
	defaultSentryTokenFile  = "/var/run/secrets/dapr.io/sentrytoken/token"
	defaultConfigName       = "daprsystem"
)

// ignoredFlags are Dapr operator flags Tandem accepts but does not act on
// (true: boolean). The watchdog is not needed: the injector is fail-closed
// for annotated pods.
var ignoredFlags = map[string]bool{
	"watch-interval": false, "max-pod-restarts-per-minute": false, "watchdog-can-patch-pod-labels": true,
	"enable-argo-rollout-service-reconciler": true, "enable-profiling": true, "profile-port": false, "metrics-push-enable": true,
}

type ignored struct {
	name   string
	isBool bool
	into   map[string]string
}

func (f *ignored) String() string     { return "" }
func (f *ignored) IsBoolFlag() bool   { return f.isBool }
func (f *ignored) Set(v string) error { f.into[f.name] = v; return nil }

// ParseFlags parses args (without the program name).
func ParseFlags(args []string, usage io.Writer) (*Options, error) {
	o := &Options{Ignored: map[string]string{}}
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&o.Config, "config", defaultConfigName, "Name of the Configuration (in the operator's namespace) holding spec.mtls.sentryAddress and controlPlaneTrustDomain")
	fs.BoolVar(&o.DisableLeaderElection, "disable-leader-election", false, "Disable leader election for the controllers that write")
	fs.BoolVar(&o.DisableServiceReconciler, "disable-service-reconciler", false, "Do not create the <app-id>-dapr Services of annotated Deployments and StatefulSets")
	fs.StringVar(&o.WatchNamespace, "watch-namespace", "", "Only watch this namespace (all if empty)")
	fs.StringVar(&o.TrustAnchorsFile, "trust-anchors-file", defaultTrustAnchorsFile, "PEM file of the trust anchors that verify sentry and the sidecars")
	fs.IntVar(&o.Port, "port", 6500, "Port of the operator API that sidecars call")
	fs.StringVar(&o.ListenAddress, "listen-address", "", "Address of the operator API (all interfaces if empty)")
	fs.IntVar(&o.HealthzPort, "healthz-port", 8080, "Port of /healthz")
	fs.StringVar(&o.HealthzListenAddress, "healthz-listen-address", "", "Address of /healthz")
	fs.StringVar(&o.MetricsPort, "metrics-port", "9090", "Port of the Prometheus /metrics endpoint")
	fs.StringVar(&o.MetricsListenAddress, "metrics-listen-address", "", "Address of /metrics")
	fs.BoolVar(&o.EnableMetrics, "enable-metrics", true, "Serve Prometheus metrics")
	fs.DurationVar(&o.CacheSyncPeriod, "cache-sync-period", 0, "Resync period of the informer cache (controller-runtime's default if zero)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "Log level: debug, info, warn, error or fatal")
	fs.BoolVar(&o.LogAsJSON, "log-as-json", false, "Log in JSON")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig (in-cluster configuration if empty)")
	fs.StringVar(&o.SentryAddress, "sentry-address", "", "Sentry's address (default: the Configuration's spec.mtls.sentryAddress, else dapr-sentry.<namespace>.svc:443)")
	fs.StringVar(&o.SentryTokenFile, "sentry-token-file", defaultSentryTokenFile, "The pod's projected service account token, sent to sentry")
	fs.BoolVar(&o.Version, "version", false, "Print the version and exit")
	fs.IntVar(&o.WebhookPort, "webhook-server-port", 19443, "Port of the Subscription CRD's conversion webhook (/convert, HTTPS with the operator's certificate; 0: off)")
	fs.StringVar(&o.WebhookListenAddress, "webhook-server-listen-address", "", "Address of the conversion webhook (all interfaces if empty)")
	fs.IntVar(&o.XDSPort, "xds-port", 0, "Serve xDS (ADS) for proxyless gRPC apps on this port, with mTLS (0: off)")
	fs.StringVar(&o.XDSTrustDomain, "xds-trust-domain", "public", "The apps' SPIFFE trust domain: the SANs xDS clients check, and who may connect")
	for name, isBool := range ignoredFlags {
		fs.Var(&ignored{name: name, isBool: isBool, into: o.Ignored}, name, "Dapr operator flag accepted for compatibility and ignored")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: the operator takes only flags", fs.Args())
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	var errs []error
	if _, err := logging.ParseLevel(o.LogLevel); err != nil {
		errs = append(errs, err)
	}
	for name, p := range map[string]int{"--port": o.Port, "--healthz-port": o.HealthzPort, "--webhook-server-port": o.WebhookPort} {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d is not a port number", name, p))
		}
	}
	if o.CacheSyncPeriod < 0 {
		errs = append(errs, errors.New("--cache-sync-period must not be negative"))
	}
	return errors.Join(errs...)
}

func (o *Options) ignoredNames() []string {
	var names []string
	for n := range o.Ignored {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
