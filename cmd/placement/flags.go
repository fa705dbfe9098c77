package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tandemrun/tandem/internal/flagvalue"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/placement"
)

// Options are Dapr placement's command-line options.
type Options struct {
	ID                        string
	InitialCluster            []string
	InmemStoreEnabled         bool
	RaftLogStorePath          string
	Port                      int
	ListenAddress             string
	HealthzPort               int
	HealthzListenAddress      string
	TLSEnabled                bool
	MetadataEnabled           bool
	ReplicationFactor         int
	KeepAliveTime             time.Duration
	KeepAliveTimeout          time.Duration
	DisseminateTimeout        time.Duration
	DisseminateCoalesceWindow time.Duration
	// LeaderSettleWindow is Tandem's --leader-settle-window; negative:
	// the default (2s with several replicas, 0 with one).
	LeaderSettleWindow   time.Duration
	TrustDomain          string
	TrustAnchorsFile     string
	SentryAddress        string
	Mode                 string
	MaxAPILevel          int
	MinAPILevel          int
	LogLevel             string
	LogAsJSON            bool
	MetricsPort          string
	MetricsListenAddress string
	EnableMetrics        bool
	Version              bool
	// set names the flags given on the command line.
	set map[string]bool
}

// Dapr's defaults (cmd/placement/options).
const (
	defaultTrustAnchorsFile = "/var/run/secrets/dapr.io/tls/ca.crt"
	keepAliveMin            = time.Second
	keepAliveMax            = 10 * time.Second
)

// ParseFlags parses args (without the program name); -flag and --flag
// both work, as with Dapr's placement. getenv supplies NAMESPACE and
// DAPR_PLACEMENT_METADATA_ENABLED.
func ParseFlags(args []string, usageOut io.Writer, getenv func(string) string) (*Options, error) {
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}
	o := &Options{InitialCluster: []string{"dapr-placement-0=127.0.0.1:8201"}, set: map[string]bool{}}
	fs := flag.NewFlagSet("placement", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&o.ID, "id", "dapr-placement-0", "This replica's ID in --initial-cluster")
	fs.Var(flagvalue.NewList(&o.InitialCluster), "initial-cluster", "The Raft cluster: id=host:port of every replica, comma separated")
	fs.BoolVar(&o.InmemStoreEnabled, "inmem-store-enabled", true, "Keep the Raft log in memory unless --raft-logstore-path is set")
	fs.StringVar(&o.RaftLogStorePath, "raft-logstore-path", "", "Folder for the Raft log, vote and snapshots (raft.db); empty keeps them in memory")
	fs.IntVar(&o.Port, "port", 50005, "Port of the placement gRPC service")
	fs.StringVar(&o.ListenAddress, "listen-address", "", "Address of the placement gRPC service (all interfaces if empty)")
	fs.IntVar(&o.HealthzPort, "healthz-port", 8080, "Port of the /healthz endpoint")
	fs.StringVar(&o.HealthzListenAddress, "healthz-listen-address", "", "Address of the /healthz endpoint (all interfaces if empty)")
	fs.BoolVar(&o.TLSEnabled, "tls-enabled", false, "Serve hosts and the other replicas with mTLS, with a certificate from sentry")
	fs.BoolVar(&o.MetadataEnabled, "metadata-enabled", truthy(getenv("DAPR_PLACEMENT_METADATA_ENABLED")), "Serve the placement tables at /placement/state on the healthz server")
	fs.IntVar(&o.ReplicationFactor, "replicationFactor", placement.DefaultReplicationFactor, "Virtual nodes per host on the hashing ring")
	fs.DurationVar(&o.KeepAliveTime, "keepalive-time", placement.DefaultKeepAliveTime, "Interval of the keepalive pings to hosts (1s to 10s)")
	fs.DurationVar(&o.KeepAliveTimeout, "keepalive-timeout", placement.DefaultKeepAliveTimeout, "Time a host has to answer a keepalive ping before it is disconnected (1s to 10s)")
	fs.DurationVar(&o.DisseminateTimeout, "disseminate-timeout", placement.DefaultDisseminateTimeout, "Time a dissemination round may take; hosts that have not answered by then are disconnected")
	fs.DurationVar(&o.DisseminateCoalesceWindow, "disseminate-coalesce-window", 0, "After a round, wait this long so that hosts joining or leaving meanwhile share the next round (0: none)")
	fs.DurationVar(&o.LeaderSettleWindow, "leader-settle-window", -1, "Tandem: after becoming the leader, admit the hosts that connect within this window together before the first table (default 2s with several replicas, 0 with one)")
	fs.StringVar(&o.TrustDomain, "trust-domain", "localhost", "Trust domain of the control plane")
	fs.StringVar(&o.TrustAnchorsFile, "trust-anchors-file", defaultTrustAnchorsFile, "PEM trust anchors of the control plane (with --tls-enabled)")
	fs.StringVar(&o.SentryAddress, "sentry-address", "dapr-sentry."+namespace+".svc:443", "Address of sentry (with --tls-enabled)")
	fs.StringVar(&o.Mode, "mode", "standalone", "Runtime mode: standalone or kubernetes")
	fs.IntVar(&o.MaxAPILevel, "max-api-level", 10, "Deprecated in Dapr and ignored, as by Dapr 1.18")
	fs.IntVar(&o.MinAPILevel, "min-api-level", 0, "Deprecated in Dapr and ignored, as by Dapr 1.18")
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
		return nil, fmt.Errorf("unexpected arguments %q: placement takes only flags", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.RaftLogStorePath != "" {
		o.InmemStoreEnabled = false
	}
	return o, o.Validate()
}

// Validate checks option values.
func (o *Options) Validate() error {
	var errs []error
	if o.KeepAliveTime < keepAliveMin || o.KeepAliveTime > keepAliveMax {
		errs = append(errs, fmt.Errorf("invalid value for keepalive-time: value should be between %s and %s, got %s", keepAliveMin, keepAliveMax, o.KeepAliveTime))
	}
	if o.KeepAliveTimeout < keepAliveMin || o.KeepAliveTimeout > keepAliveMax {
		errs = append(errs, fmt.Errorf("invalid value for keepalive-timeout: value should be between %s and %s, got %s", keepAliveMin, keepAliveMax, o.KeepAliveTimeout))
	}
	switch strings.ToLower(o.Mode) {
	case "standalone", "kubernetes":
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
	if o.ReplicationFactor <= 0 {
		errs = append(errs, fmt.Errorf("--replicationFactor %d must be positive", o.ReplicationFactor))
	}
	if o.DisseminateTimeout < 0 || o.DisseminateCoalesceWindow < 0 {
		errs = append(errs, errors.New("--disseminate-timeout and --disseminate-coalesce-window must not be negative"))
	}
	if len(placement.ParsePeers(o.InitialCluster)) == 0 {
		errs = append(errs, fmt.Errorf("--initial-cluster %q names no replica; use id=host:port[,id=host:port...]", strings.Join(o.InitialCluster, ",")))
	}
	return errors.Join(errs...)
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "y", "on":
		return true
	}
	return false
}
