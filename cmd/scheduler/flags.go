package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tandemrun/tandem/internal/flagvalue"
	"github.com/tandemrun/tandem/internal/logging"
)

// Options are Dapr scheduler's command-line options.
type Options struct {
	ID                       string
	Port                     int
	ListenAddress            string
	HealthzPort              int
	HealthzListenAddress     string
	OverrideBroadcastHost    string
	TLSEnabled               bool
	TrustDomain              string
	TrustAnchorsFile         string
	SentryAddress            string
	Mode                     string
	Kubeconfig               string
	EtcdEmbed                bool
	EtcdInitialCluster       []string
	EtcdDataDir              string
	EtcdClientPort           int
	EtcdClientListenAddress  string
	EtcdSpaceQuota           int64
	EtcdCompactionMode       string
	EtcdCompactionRetention  string
	EtcdSnapshotCount        uint64
	EtcdMaxSnapshots         uint
	EtcdMaxWALs              uint
	EtcdBackendBatchLimit    int
	EtcdBackendBatchInterval time.Duration
	EtcdMaxTxnOps            uint
	EtcdDefragThresholdMB    uint
	EtcdElectionTickAdvance  bool
	EtcdMetrics              string
	EtcdClientEndpoints      []string
	EtcdClientUsername       string
	EtcdClientPassword       string
	IdentityDirectoryWrite   string
	Workers                  uint
	LogLevel                 string
	LogAsJSON                bool
	MetricsPort              string
	MetricsListenAddress     string
	EnableMetrics            bool
	Version                  bool
	// set names the flags given on the command line.
	set map[string]bool
}

// defaultTrustAnchorsFile is Dapr's control-plane default.
const defaultTrustAnchorsFile = "/var/run/secrets/dapr.io/tls/ca.crt"

// ParseFlags parses args (without the program name); -flag and --flag
// both work. getenv supplies NAMESPACE. A command line that does not parse
// returns no Options; one that parses to values Dapr's scheduler refuses
// returns the Options with the error (the caller logs it as Dapr does).
func ParseFlags(args []string, usageOut io.Writer, getenv func(string) string) (*Options, error) {
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}
	o := &Options{EtcdInitialCluster: []string{"dapr-scheduler-server-0=http://localhost:2380"}, set: map[string]bool{}}
	var quota, batchInterval string
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.IntVar(&o.Port, "port", 50006, "Port of the scheduler gRPC service")
	fs.StringVar(&o.ListenAddress, "listen-address", "", "Address of the scheduler gRPC service (all interfaces if empty)")
	fs.IntVar(&o.HealthzPort, "healthz-port", 8080, "Port of the /healthz endpoint")
	fs.StringVar(&o.HealthzListenAddress, "healthz-listen-address", "", "Address of the /healthz endpoint (all interfaces if empty)")
	fs.StringVar(&o.OverrideBroadcastHost, "override-broadcast-host-port", "", "host:port sidecars are told to reach this replica at (default: the listen address, or this host's address)")
	fs.BoolVar(&o.TLSEnabled, "tls-enabled", false, "Serve sidecars with mTLS, with a certificate from sentry")
	fs.StringVar(&o.TrustDomain, "trust-domain", "localhost", "Trust domain of the control plane")
	fs.StringVar(&o.TrustAnchorsFile, "trust-anchors-file", defaultTrustAnchorsFile, "PEM trust anchors of the control plane (with --tls-enabled)")
	fs.StringVar(&o.SentryAddress, "sentry-address", "dapr-sentry."+namespace+".svc:443", "Address of sentry (with --tls-enabled)")
	fs.StringVar(&o.Mode, "mode", "standalone", "Runtime mode: standalone or kubernetes")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Kubernetes mode only: path of a kubeconfig file")
	fs.StringVar(&o.ID, "id", "dapr-scheduler-server-0", "This replica's ID, its name in --etcd-initial-cluster")
	fs.BoolVar(&o.EtcdEmbed, "etcd-embed", true, "Run etcd inside the scheduler; false connects to --etcd-client-endpoints")
	fs.Var(flagvalue.NewList(&o.EtcdInitialCluster), "etcd-initial-cluster", "The etcd cluster: id=http://host:peer-port of every replica, comma separated")
	fs.StringVar(&o.EtcdDataDir, "etcd-data-dir", "./data", "Folder of the embedded etcd's data")
	fs.IntVar(&o.EtcdClientPort, "etcd-client-port", 2379, "Port of the embedded etcd's client API")
	fs.StringVar(&o.EtcdClientListenAddress, "etcd-client-listen-address", "localhost", "Address of the embedded etcd's client API")
	fs.StringVar(&quota, "etcd-space-quota", "9.2E", "Space quota of etcd (a Kubernetes quantity: 2Gi, 9.2E)")
	fs.StringVar(&o.EtcdCompactionMode, "etcd-compaction-mode", "revision", "etcd compaction mode: periodic or revision")
	fs.StringVar(&o.EtcdCompactionRetention, "etcd-compaction-retention", "1000000", "etcd compaction retention (a duration or a number of revisions)")
	fs.Uint64Var(&o.EtcdSnapshotCount, "etcd-snapshot-count", 100000, "Committed transactions that trigger an etcd snapshot")
	fs.UintVar(&o.EtcdMaxSnapshots, "etcd-max-snapshots", 10, "etcd snapshot files kept (0: all)")
	fs.UintVar(&o.EtcdMaxWALs, "etcd-max-wals", 10, "etcd write-ahead logs kept (0: all)")
	fs.IntVar(&o.EtcdBackendBatchLimit, "etcd-backend-batch-limit", 10000, "Operations before etcd commits its backend transaction")
	fs.StringVar(&batchInterval, "etcd-backend-batch-interval", "100ms", "Time before etcd commits its backend transaction")
	fs.UintVar(&o.EtcdMaxTxnOps, "etcd-max-txn-ops", 10000, "Operations allowed in one etcd transaction")
	fs.UintVar(&o.EtcdDefragThresholdMB, "etcd-experimental-bootstrap-defrag-threshold-megabytes", 100, "Megabytes to free for etcd to defragment at start")
	fs.BoolVar(&o.EtcdElectionTickAdvance, "etcd-initial-election-tick-advance", false, "Fast-forward etcd's first election")
	fs.StringVar(&o.EtcdMetrics, "etcd-metrics", "basic", "etcd metrics detail: basic or extensive")
	fs.Var(flagvalue.NewList(&o.EtcdClientEndpoints), "etcd-client-endpoints", "External etcd endpoints, comma separated (with --etcd-embed=false)")
	fs.StringVar(&o.EtcdClientUsername, "etcd-client-username", "", "External etcd user name (with --etcd-embed=false)")
	fs.StringVar(&o.EtcdClientPassword, "etcd-client-password", "", "External etcd password (with --etcd-embed=false)")
	fs.StringVar(&o.IdentityDirectoryWrite, "identity-directory-write", "", "Accepted for Dapr's compatibility; Tandem keeps its certificate in memory")
	fs.UintVar(&o.Workers, "workers", 2048, "Deliveries under way at most on this replica")
	fs.StringVar(&o.LogLevel, "log-level", "info", "Log level: debug, info, warn, error or fatal")
	fs.BoolVar(&o.LogAsJSON, "log-as-json", false, "Log in JSON")
	fs.StringVar(&o.MetricsPort, "metrics-port", "9090", "Port of the Prometheus metrics endpoint")
	fs.StringVar(&o.MetricsListenAddress, "metrics-listen-address", "", "Address of the metrics endpoint (all interfaces if empty)")
	fs.BoolVar(&o.EnableMetrics, "enable-metrics", true, "Serve Prometheus metrics")
	fs.BoolVar(&o.Version, "version", false, "Print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: scheduler takes only flags", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	var errs []error
	var err error
	if o.EtcdSpaceQuota, err = ParseQuantity(quota); err != nil {
		errs = append(errs, fmt.Errorf("failed to parse etcd space quota: %w", err))
	}
	if o.EtcdBackendBatchInterval, err = time.ParseDuration(batchInterval); err != nil {
		errs = append(errs, errors.New("failed to parse backend batch interval. Please use a string representing time.Duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// Validate checks option values, with Dapr's messages where it has them.
func (o *Options) Validate() error {
	var errs []error
	switch strings.ToLower(o.Mode) {
	case "standalone", "kubernetes":
	default:
		errs = append(errs, fmt.Errorf("--mode %q is not valid; use standalone or kubernetes", o.Mode))
	}
	if o.set["kubeconfig"] && !strings.EqualFold(o.Mode, "kubernetes") {
		errs = append(errs, errors.New("kubeconfig flag is only valid in --mode=kubernetes"))
	}
	if o.EtcdEmbed {
		if len(o.EtcdClientEndpoints) > 0 {
			errs = append(errs, errors.New("cannot use --etcd-client-endpoints with --etcd-embed"))
		}
		if o.EtcdClientUsername != "" {
			errs = append(errs, errors.New("cannot use --etcd-client-username with --etcd-embed"))
		}
		if o.EtcdClientPassword != "" {
			errs = append(errs, errors.New("cannot use --etcd-client-password with --etcd-embed"))
		}
	} else if len(o.EtcdClientEndpoints) == 0 {
		errs = append(errs, errors.New("must specify --etcd-client-endpoints when not using embedded etcd"))
	}
	if _, err := logging.ParseLevel(o.LogLevel); err != nil {
		errs = append(errs, err)
	}
	for name, p := range map[string]int{"--port": o.Port, "--healthz-port": o.HealthzPort, "--etcd-client-port": o.EtcdClientPort} {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("%s %d is not a port number", name, p))
		}
	}
	if o.OverrideBroadcastHost != "" {
		if _, _, err := net.SplitHostPort(o.OverrideBroadcastHost); err != nil {
			errs = append(errs, fmt.Errorf("--override-broadcast-host-port %q is not host:port", o.OverrideBroadcastHost))
		}
	}
	return errors.Join(errs...)
}

// ParseQuantity reads a Kubernetes resource quantity ("2Gi", "9.2E",
// "500M", "1024") as a number of bytes.
func ParseQuantity(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult, exp := 1.0, ""
	for _, u := range []struct {
		suffix string
		mult   float64
		exp    string
	}{
		{"Ki", 1 << 10, ""}, {"Mi", 1 << 20, ""}, {"Gi", 1 << 30, ""}, {"Ti", 1 << 40, ""}, {"Pi", 1 << 50, ""}, {"Ei", 1 << 60, ""},
		{"k", 1, "e3"}, {"M", 1, "e6"}, {"G", 1, "e9"}, {"T", 1, "e12"}, {"P", 1, "e15"}, {"E", 1, "e18"},
	} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult, exp = strings.TrimSuffix(s, u.suffix), u.mult, u.exp
			break
		}
	}
	if strings.ContainsAny(s, "eE") && exp != "" {
		return 0, fmt.Errorf("quantity %q has two exponents", s)
	}
	f, err := strconv.ParseFloat(s+exp, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("quantity %q is not a number with an optional unit (Ki, Mi, Gi, k, M, G, E...)", s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(v), nil
}
