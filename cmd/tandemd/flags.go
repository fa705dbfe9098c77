package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tandemrun/tandem/internal/logging"
)

// Options is daprd's command line and environment, parsed and checked.
// Every daprd 1.18 flag is accepted (in -flag and --flag form); flags for
// features Tandem does not implement are listed in Ignored instead of
// failing, so `dapr run` and existing manifests keep working.
type Options struct {
	// Each group is what one part of the sidecar is built from; the
	// fields are promoted, so o.AppID reads as before.
	AppFlags
	APIFlags
	ResourceFlags
	IdentityFlags
	ObservabilityFlags
	ShutdownFlags
	UnsupportedFlags

	ShowVersion bool // --version: main prints the version and exits 0
	BuildInfo   bool // --build-info: main prints build details and exits 0
}

// AppFlags say how to reach the application (proxy.AppConfig).
type AppFlags struct {
	AppID             string
	AppPort           int    // 0: no app (sidecar only)
	AppProtocol       string // http | grpc | https | grpcs | h2c
	AppChannelAddress string
	AppMaxConcurrency int // 0: unlimited
	AppHealth         AppHealth
	AppAPIToken       string // APP_API_TOKEN: sent to the app; never log
	AppWasm           AppWasm
}

// AppWasm hosts the app inside the sidecar as a Wasm module
// (proxy/wasmhost) instead of reaching it on a port.
type AppWasm struct {
	Path         string        // --app-wasm; "": no Wasm app
	MemoryMiB    int           // --app-wasm-memory, per instance
	Timeout      time.Duration // --app-wasm-timeout, per request
	MaxInstances int           // --app-wasm-instances
	CacheDir     string        // --app-wasm-cache-dir; "": compile at every start
}

// APIFlags configure the Dapr API servers (proxy.ListenConfig, proxy.APIs).
// Port 0 means "any free port".
type APIFlags struct {
	HTTPPort                  int
	GRPCPort                  int
	InternalGRPCPort          int // 0: pick one (Dapr picks a stable port from the app ID)
	InternalGRPCListenAddress string
	PublicPort                int // 0: no separate health/metadata server
	PublicListenAddress       string
	// ListenAddresses for the HTTP and gRPC APIs; nil means all interfaces
	// (Dapr's default).
	ListenAddresses      []string
	MaxRequestBodySize   int // bytes
	ReadBufferSize       int // bytes, also the header size limit
	AllowedOrigins       string
	EnableAPILogging     *bool    // nil: not given, use the Configuration's logging.apiLogging.enabled
	DisableInitEndpoints []string // subset of config, subscribe
	APIToken             string   // DAPR_API_TOKEN: apps must send it; never log
}

// ResourceFlags name the resource folders and Configuration files.
type ResourceFlags struct {
	ResourcesPaths []string // --resources-path, else --components-path
	// ConfigPaths are the --config values, in order; later files override
	// earlier ones. In Kubernetes mode they are names of Configuration
	// resources, and only the first is used (as in daprd).
	ConfigPaths []string
	// HotReloadReconcileInterval is how often, in Kubernetes mode, the
	// resources are listed again as a backup of the operator's update
	// streams (--hot-reload-reconcile-interval; 0: daprd's 60 s).
	HotReloadReconcileInterval time.Duration
}

// IdentityFlags configure who the sidecar is and its mTLS identity.
type IdentityFlags struct {
	Mode                    string // ModeStandalone | ModeKubernetes
	EnableMTLS              bool
	LeanTransport           bool
	SentryAddress           string
	ControlPlaneAddress     string
	ControlPlaneTrustDomain string
	ControlPlaneNamespace   string
	TrustAnchors            []byte // DAPR_TRUST_ANCHORS (PEM)
	TrustAnchorsFile        string // --trust-anchors-file or DAPR_TRUST_ANCHORS_FILE
	SentryToken             string // --sentry-token or TANDEM_SENTRY_TOKEN; never log
	SentryTokenFile         string // DAPR_SENTRY_TOKEN_FILE
	SentryJWTAudiences      []string
	SentryLocalIdentity     string // SENTRY_LOCAL_IDENTITY: app ID to request a certificate for, if not AppID
	Namespace               string // NAMESPACE, default "default"
	// MetricsNamespace is NAMESPACE as set, "" when unset: daprd labels its
	// metrics with the variable itself, not the default.
	MetricsNamespace string
	PodName          string // POD_NAME
	HostIP           string // DAPR_HOST_IP: address other sidecars reach us at
	// DisableBuiltinK8sSecretStore: no secret store "kubernetes" of its
	// own in Kubernetes mode.
	DisableBuiltinK8sSecretStore bool
}

// ObservabilityFlags configure logs, metrics and profiling.
type ObservabilityFlags struct {
	LogLevel       string // debug | info | warn | error | fatal
	LogAsJSON      bool
	MetricsEnabled bool
	// EnableProfiling serves Go's pprof handlers under /debug/pprof on
	// ProfilePort (--enable-profiling, --profile-port), as daprd does.
	EnableProfiling      bool
	ProfilePort          int
	MetricsPort          int
	MetricsListenAddress string
}

// ShutdownFlags configure the graceful shutdown.
type ShutdownFlags struct {
	GracefulShutdown time.Duration
	BlockShutdown    *time.Duration // nil: disabled
}

// UnsupportedFlags are accepted for compatibility; the placement ones turn
// on actors.
type UnsupportedFlags struct {
	PlacementAddresses []string
	// ActorsDisseminateTimeout bounds how long actor calls wait for
	// placement's table (--actors-disseminate-timeout).
	ActorsDisseminateTimeout time.Duration
	// SchedulerAddresses are --scheduler-host-address's entries (jobs and
	// actor reminders); none disables the scheduler, as in daprd.
	SchedulerAddresses []string
	// SchedulerJobStreams is the number of job streams per scheduler host
	// (--scheduler-job-streams).
	SchedulerJobStreams uint
	// Ignored lists flags that were given but name features Tandem does not
	// implement, each as "--flag=value (reason)". main logs them.
	Ignored []string
}

// AppHealth configures app health probes (--enable-app-health-check ...).
type AppHealth struct {
	Enabled   bool
	Path      string // HTTP only
	Interval  time.Duration
	Timeout   time.Duration
	Threshold int
}

// Runtime modes (--mode).
const (
	ModeStandalone = "standalone"
	ModeKubernetes = "kubernetes"
)

// Environment variables read by ParseFlags, besides the flags.
const (
	envTrustAnchors         = "DAPR_TRUST_ANCHORS"
	envTrustAnchorsFile     = "DAPR_TRUST_ANCHORS_FILE"
	envSentryToken          = "TANDEM_SENTRY_TOKEN"
	envSentryTokenFile      = "DAPR_SENTRY_TOKEN_FILE"
	envSentryLocalIdentity  = "SENTRY_LOCAL_IDENTITY"
	envControlPlaneNS       = "DAPR_CONTROLPLANE_NAMESPACE"
	envControlPlaneTD       = "DAPR_CONTROLPLANE_TRUST_DOMAIN"
	envNamespace            = "NAMESPACE"
	envPodName              = "POD_NAME"
	envHostIP               = "DAPR_HOST_IP"
	envAPIToken             = "DAPR_API_TOKEN"
	envAppAPIToken          = "APP_API_TOKEN"
	envSchedulerHostAddress = "DAPR_SCHEDULER_HOST_ADDRESS_DNS_A"
)

// rawFlags holds flag values before conversion; ports are text as in daprd.
type rawFlags struct {
	appPort, httpPort, grpcPort, internalGRPCPort, publicPort, metricsPort, profilePort string
	appHealthInterval, appHealthTimeout                                                 int
	maxRequestSizeMB, readBufferSizeKB                                                  int
	maxBodySize, readBufferSize                                                         string
	gracefulSeconds                                                                     int
	blockShutdown                                                                       time.Duration
	enableAPILogging                                                                    bool
	listenAddresses, placement                                                          string
	resources, components, configs, jwtAudiences, scheduler, disableInit                listFlag
	appSSL, enableProfiling, wait                                                       bool
	unixDomainSocket, actorsService, remindersService                                   string
	schedulerJobStreams                                                                 uint
	actorsDisseminateTimeout                                                            time.Duration
}

// listFlag is a repeatable flag that also splits on commas, like pflag's
// StringSlice that daprd uses.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if p := strings.TrimSpace(part); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// flagGroup is a titled set of flags for Usage.
type flagGroup struct {
	title string
	names []string
}

// registry defines flags on a FlagSet and remembers their groups.
type registry struct {
	fs     *flag.FlagSet
	groups []flagGroup
}

func (r *registry) group(title string) { r.groups = append(r.groups, flagGroup{title: title}) }

func (r *registry) note(name string) {
	g := &r.groups[len(r.groups)-1]
	g.names = append(g.names, name)
}

func (r *registry) str(p *string, name, def, usage string) {
	r.fs.StringVar(p, name, def, usage)
	r.note(name)
}

func (r *registry) boolean(p *bool, name string, def bool, usage string) {
	r.fs.BoolVar(p, name, def, usage)
	r.note(name)
}

func (r *registry) integer(p *int, name string, def int, usage string) {
	r.fs.IntVar(p, name, def, usage)
	r.note(name)
}

func (r *registry) duration(p *time.Duration, name string, def time.Duration, usage string) {
	r.fs.DurationVar(p, name, def, usage)
	r.note(name)
}

func (r *registry) list(p *listFlag, name, usage string) {
	r.fs.Var(p, name, usage)
	r.note(name)
}

// newRegistry defines every flag, with daprd 1.18's names and defaults
// (cmd/daprd/options/options.go).
func newRegistry(o *Options, raw *rawFlags) *registry {
	fs := flag.NewFlagSet("tandemd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	r := &registry{fs: fs}

	r.group("Application")
	r.str(&o.AppID, "app-id", "", "A unique ID for the app; used for service discovery, state key prefixes and its SPIFFE identity")
	r.str(&raw.appPort, "app-port", "", "The `port` the app listens on; empty or 0 for no app")
	r.str(&o.AppProtocol, "app-protocol", "http", "Protocol of the app: http, grpc, https, grpcs or h2c")
	r.str(&o.AppChannelAddress, "app-channel-address", "127.0.0.1", "The network address the app listens on")
	r.integer(&o.AppMaxConcurrency, "app-max-concurrency", -1, "Maximum concurrent requests forwarded to the app; -1 for no limit")
	r.boolean(&o.AppHealth.Enabled, "enable-app-health-check", false, "Probe the app's health using --app-protocol")
	r.str(&o.AppHealth.Path, "app-health-check-path", "/healthz", "Path probed for app health; HTTP only")
	r.integer(&raw.appHealthInterval, "app-health-probe-interval", 5, "Seconds between app health probes")
	r.integer(&raw.appHealthTimeout, "app-health-probe-timeout", 500, "Timeout of an app health probe, in milliseconds")
	r.integer(&o.AppHealth.Threshold, "app-health-threshold", 3, "Consecutive failed probes before the app is unhealthy")
	r.str(&o.AppWasm.Path, "app-wasm", "", "Host the app in the sidecar: the `path` of its Wasm module (an http-wasm handler, see package wasmapp, or a lean app, see wasmapp/lean); instead of --app-port")
	r.integer(&o.AppWasm.MemoryMiB, "app-wasm-memory", 64, "Memory limit of each Wasm app instance, in MiB")
	r.duration(&o.AppWasm.Timeout, "app-wasm-timeout", time.Minute, "Time limit of each request into the Wasm app, its own Dapr API calls included")
	r.integer(&o.AppWasm.MaxInstances, "app-wasm-instances", 32, "Most Wasm app instances serving requests at once")
	r.str(&o.AppWasm.CacheDir, "app-wasm-cache-dir", defaultWasmCacheDir(), "`Folder` keeping the Wasm app's compiled code between starts; empty for none")
	r.list(&raw.disableInit, "disable-init-endpoints", "Startup calls to the app to skip: config, subscribe (comma separated `list`)")

	r.group("Dapr API")
	r.str(&raw.httpPort, "dapr-http-port", "3500", "HTTP `port` for the Dapr API")
	r.str(&raw.grpcPort, "dapr-grpc-port", "50001", "gRPC `port` for the Dapr API")
	r.str(&raw.listenAddresses, "dapr-listen-addresses", "", "`Addresses` for the Dapr API to listen on, comma separated; empty for all")
	r.str(&raw.internalGRPCPort, "dapr-internal-grpc-port", "", "gRPC `port` for sidecar-to-sidecar calls; empty to pick one")
	r.str(&o.InternalGRPCListenAddress, "dapr-internal-grpc-listen-address", "", "Listen address for sidecar-to-sidecar calls")
	r.str(&raw.publicPort, "dapr-public-port", "", "`Port` for a public health and metadata server; empty for none")
	r.str(&o.PublicListenAddress, "dapr-public-listen-address", "", "Listen address for the public health and metadata server")
	r.str(&raw.maxBodySize, "max-body-size", "4Mi", "Max request body `size` for the Dapr HTTP and gRPC servers, e.g. 4Mi, 16M, 1048576")
	r.str(&raw.readBufferSize, "read-buffer-size", "4Ki", "Max `size` of the HTTP read buffer (limits header size), e.g. 4Ki, 16Ki")
	r.str(&o.AllowedOrigins, "allowed-origins", "", "Allowed CORS origins for the HTTP API, comma separated; empty disables CORS")
	r.boolean(&raw.enableAPILogging, "enable-api-logging", false, "Log every API call (overrides the Configuration's logging.apiLogging.enabled)")

	r.group("Resources")
	r.list(&raw.resources, "resources-path", "`Directory` of resource files (components, subscriptions, resiliency); repeatable or comma separated")
	r.list(&raw.configs, "config", "`Path` to a Configuration file; repeatable, later files override earlier ones")

	r.group("Identity and mTLS")
	r.boolean(&o.EnableMTLS, "enable-mtls", false, "Use mTLS with SPIFFE identities from sentry for sidecar-to-sidecar calls")
	r.boolean(&o.LeanTransport, "lean-transport", true, "With mTLS, make service invocations and actor calls to Tandem peers over the lean transport (ALPN tandem-invoke/3: less CPU per call than gRPC, the same metrics, spans, access control and errors); daprd peers, and older Tandem ones, keep Dapr's gRPC. --lean-transport=false uses gRPC for every peer")
	r.str(&o.SentryAddress, "sentry-address", "", "Address (host:port) of the sentry CA")
	r.str(&o.TrustAnchorsFile, "trust-anchors-file", "", "PEM file of trust anchors, watched for rotation (env "+envTrustAnchorsFile+"; or PEM in "+envTrustAnchors+")")
	r.str(&o.SentryToken, "sentry-token", "", "Join token sent to sentry; prefer env "+envSentryToken+" (command lines are visible to other users)")
	r.list(&raw.jwtAudiences, "sentry-request-jwt-audiences", "JWT audiences to request from sentry (comma separated `list`)")
	r.str(&o.ControlPlaneAddress, "control-plane-address", "", "Address of the Dapr operator (Kubernetes)")
	r.str(&o.ControlPlaneTrustDomain, "control-plane-trust-domain", "localhost", "Trust domain of the control plane (env "+envControlPlaneTD+")")
	r.str(&o.ControlPlaneNamespace, "control-plane-namespace", "default", "Namespace of the control plane (env "+envControlPlaneNS+")")
	r.str(&o.Mode, "mode", ModeStandalone, "Runtime mode: standalone (resources from --resources-path) or kubernetes (resources from the operator at --control-plane-address)")
	r.boolean(&o.DisableBuiltinK8sSecretStore, "disable-builtin-k8s-secret-store", false, "Kubernetes mode: no built-in secret store \"kubernetes\" (the namespace's Secrets, read with the pod's service account)")

	r.group("Observability")
	r.str(&o.LogLevel, "log-level", "info", "Log level: debug, info, warn, error or fatal")
	r.boolean(&o.LogAsJSON, "log-as-json", false, "Write logs as JSON")
	r.boolean(&o.MetricsEnabled, "enable-metrics", true, "Serve Prometheus metrics")
	r.str(&raw.metricsPort, "metrics-port", "9090", "`Port` for the metrics server")
	r.str(&o.MetricsListenAddress, "metrics-listen-address", "0.0.0.0", "Address for the metrics server")

	r.group("Shutdown")
	r.integer(&raw.gracefulSeconds, "dapr-graceful-shutdown-seconds", 5, "Seconds to drain in-flight work on shutdown")
	r.duration(&raw.blockShutdown, "dapr-block-shutdown-duration", 0, "After a terminate signal, keep serving until this elapses or the app is unhealthy, e.g. 30s")

	r.group("Accepted but not implemented by Tandem (logged as ignored)")
	r.str(&raw.placement, "placement-host-address", "", "Actor placement servers")
	r.list(&raw.scheduler, "scheduler-host-address", "Scheduler servers (jobs, reminders)")
	r.fs.UintVar(&raw.schedulerJobStreams, "scheduler-job-streams", 3, "Number of job streams to the scheduler")
	r.note("scheduler-job-streams")
	r.duration(&raw.actorsDisseminateTimeout, "actors-disseminate-timeout", 30*time.Second, "Actor placement dissemination timeout")
	r.duration(&o.HotReloadReconcileInterval, "hot-reload-reconcile-interval", 0, "Kubernetes mode: how often resources are listed again as a backup of the operator's update streams (0: 60s)")
	r.boolean(&raw.enableProfiling, "enable-profiling", false, "Serve pprof")
	r.str(&raw.profilePort, "profile-port", "7777", "Port for pprof")
	r.str(&raw.unixDomainSocket, "unix-domain-socket", "", "Directory for Unix domain sockets of the Dapr API")
	r.boolean(&raw.wait, "wait", false, "Wait for Dapr outbound ready")

	r.group("Deprecated (still accepted)")
	r.list(&raw.components, "components-path", "Alias for --resources-path")
	r.boolean(&raw.appSSL, "app-ssl", false, "Use https/grpcs to reach the app; use --app-protocol https|grpcs")
	r.integer(&raw.maxRequestSizeMB, "dapr-http-max-request-size", 4, "Max request body in MB; use --max-body-size")
	r.integer(&raw.readBufferSizeKB, "dapr-http-read-buffer-size", 4, "HTTP read buffer in KB; use --read-buffer-size")
	r.str(&raw.actorsService, "actors-service", "", "No effect")
	r.str(&raw.remindersService, "reminders-service", "", "No effect")

	r.group("Information")
	r.boolean(&o.ShowVersion, "version", false, "Print the version and exit")
	r.boolean(&o.BuildInfo, "build-info", false, "Print build information and exit")
	return r
}

// ParseFlags parses daprd's flags from args (without the program name) and
// the environment through getenv. It returns flag.ErrHelp for -h/--help.
// Deprecated flags are logged on log (which may be nil); ignored ones are
// returned in Options.Ignored.
func ParseFlags(args []string, getenv func(string) string, log *slog.Logger) (*Options, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Options{}
	raw := &rawFlags{}
	r := newRegistry(o, raw)
	if err := r.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%w; run tandemd --help for the list of flags", err)
	}
	if rest := r.fs.Args(); len(rest) > 0 {
		return nil, fmt.Errorf("unexpected argument %q: tandemd takes only flags; boolean flags take a value as --flag=false, not --flag false", rest[0])
	}
	set := map[string]bool{}
	r.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	c := &converter{o: o, raw: raw, set: set, getenv: getenv, log: log}
	c.convert()
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	return o, nil
}

// converter turns raw flag values and the environment into Options,
// collecting every problem.
type converter struct {
	o      *Options
	raw    *rawFlags
	set    map[string]bool
	getenv func(string) string
	log    *slog.Logger
	errs   []error
}

func (c *converter) fail(flagName, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
}

// port parses a port flag. Empty is 0 when allowEmpty.
func (c *converter) port(name, v string) int {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 65535 {
		c.fail(name, "%q is not a port; use a number from 1 to 65535 (0 picks a free port)", v)
		return 0
	}
	return n
}

func (c *converter) deprecated(name, instead string) {
	if c.set[name] {
		c.log.Warn("flag is deprecated", "flag", "--"+name, "use", instead)
	}
}

func (c *converter) ignore(name, value, reason string) {
	if c.set[name] {
		c.o.Ignored = append(c.o.Ignored, fmt.Sprintf("--%s=%s (%s)", name, value, reason))
	}
}

func (c *converter) convert() {
	o, raw := c.o, c.raw

	// Application.
	o.AppPort = c.port("app-port", raw.appPort)
	o.AppProtocol = strings.ToLower(strings.TrimSpace(o.AppProtocol))
	switch o.AppProtocol {
	case "", "http":
		o.AppProtocol = "http"
		if raw.appSSL {
			o.AppProtocol = "https"
		}
	case "grpc":
		if raw.appSSL {
			o.AppProtocol = "grpcs"
		}
	case "https", "grpcs", "h2c":
	default:
		c.fail("app-protocol", "%q is not supported; use one of http|grpc|https|grpcs|h2c", o.AppProtocol)
	}
	c.deprecated("app-ssl", "--app-protocol https or grpcs")
	if o.AppMaxConcurrency < 0 {
		o.AppMaxConcurrency = 0
	}
	if o.AppPort > 0 && strings.TrimSpace(o.AppID) == "" {
		c.fail("app-id", "is required when --app-port is set; give the app a unique ID, e.g. --app-id orders")
	}
	if o.EnableMTLS && strings.TrimSpace(o.AppID) == "" {
		c.fail("app-id", "is required with --enable-mtls; the app ID is part of the sidecar's SPIFFE identity")
	}
	c.appHealth()
	c.appWasm()
	for _, e := range raw.disableInit {
		e = strings.ToLower(e)
		if e != "config" && e != "subscribe" {
			c.fail("disable-init-endpoints", "%q is not valid; use config, subscribe or both (comma separated)", e)
			continue
		}
		o.DisableInitEndpoints = append(o.DisableInitEndpoints, e)
	}

	// Dapr API.
	o.HTTPPort = c.port("dapr-http-port", raw.httpPort)
	o.GRPCPort = c.port("dapr-grpc-port", raw.grpcPort)
	o.InternalGRPCPort = c.port("dapr-internal-grpc-port", raw.internalGRPCPort)
	o.PublicPort = c.port("dapr-public-port", raw.publicPort)
	if o.AppPort != 0 {
		if o.AppPort == o.HTTPPort {
			c.fail("dapr-http-port", "%d is also the --app-port; the app and the sidecar need different ports", o.HTTPPort)
		}
		if o.AppPort == o.GRPCPort {
			c.fail("dapr-grpc-port", "%d is also the --app-port; the app and the sidecar need different ports", o.GRPCPort)
		}
	}
	var lf listFlag
	_ = lf.Set(raw.listenAddresses)
	for i := range lf {
		lf[i] = strings.Trim(lf[i], "[]") // daprd's form "[::1],127.0.0.1", which Dapr's injector gives
	}
	o.ListenAddresses = lf
	o.MaxRequestBodySize = c.size("max-body-size", raw.maxBodySize, "dapr-http-max-request-size", raw.maxRequestSizeMB, 20, 4<<20)
	o.ReadBufferSize = c.size("read-buffer-size", raw.readBufferSize, "dapr-http-read-buffer-size", raw.readBufferSizeKB, 10, 4<<10)
	if c.set["enable-api-logging"] {
		v := raw.enableAPILogging
		o.EnableAPILogging = &v
	}
	o.APIToken = c.getenv(envAPIToken)
	o.AppAPIToken = c.getenv(envAppAPIToken)

	// Resources.
	o.ResourcesPaths = raw.resources
	if len(o.ResourcesPaths) == 0 {
		o.ResourcesPaths = raw.components
	}
	c.deprecated("components-path", "--resources-path")
	o.ConfigPaths = raw.configs

	// Identity.
	switch o.Mode {
	case ModeStandalone:
		c.ignore("control-plane-address", o.ControlPlaneAddress, "used in --mode kubernetes only")
	case ModeKubernetes:
		c.kubernetes()
	default:
		c.fail("mode", "%q is not valid; use standalone or kubernetes", o.Mode)
	}
	o.TrustAnchors = []byte(c.getenv(envTrustAnchors))
	if o.TrustAnchorsFile == "" {
		o.TrustAnchorsFile = c.getenv(envTrustAnchorsFile)
	}
	if o.SentryToken == "" {
		o.SentryToken = c.getenv(envSentryToken)
	}
	o.SentryTokenFile = c.getenv(envSentryTokenFile)
	o.SentryJWTAudiences = raw.jwtAudiences
	o.SentryLocalIdentity = c.getenv(envSentryLocalIdentity)
	if !c.set["control-plane-namespace"] {
		if v := c.getenv(envControlPlaneNS); v != "" {
			o.ControlPlaneNamespace = v
		}
	}
	if !c.set["control-plane-trust-domain"] {
		if v := c.getenv(envControlPlaneTD); v != "" {
			o.ControlPlaneTrustDomain = v
		}
	}
	o.Namespace = c.getenv(envNamespace)
	o.MetricsNamespace = o.Namespace
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	o.PodName = c.getenv(envPodName)
	o.HostIP = c.getenv(envHostIP)
	if o.EnableMTLS && o.SentryAddress == "" {
		c.fail("sentry-address", "is required with --enable-mtls; point it at the sentry CA, e.g. --sentry-address localhost:50001")
	}
	if o.EnableMTLS && len(o.TrustAnchors) == 0 && o.TrustAnchorsFile == "" {
		c.fail("trust-anchors-file", "is required with --enable-mtls (or set %s to the PEM, or %s to a file); it is the CA bundle used to verify sentry and peers", envTrustAnchors, envTrustAnchorsFile)
	}

	// Observability.
	switch strings.ToLower(o.LogLevel) {
	case "debug", "info", "warn", "error", "fatal":
		o.LogLevel = strings.ToLower(o.LogLevel)
	case "warning":
		o.LogLevel = "warn"
	default:
		c.fail("log-level", "%q is not valid; use one of debug|info|warn|error|fatal", o.LogLevel)
	}
	o.MetricsPort = c.port("metrics-port", raw.metricsPort)

	// Shutdown.
	switch {
	case raw.gracefulSeconds < 0:
		o.GracefulShutdown = 5 * time.Second // as daprd
	default:
		o.GracefulShutdown = time.Duration(raw.gracefulSeconds) * time.Second
	}
	if c.set["dapr-block-shutdown-duration"] {
		if raw.blockShutdown < 0 {
			c.fail("dapr-block-shutdown-duration", "%s is negative; use a duration such as 30s", raw.blockShutdown)
		}
		d := raw.blockShutdown
		o.BlockShutdown = &d
	}

	if raw.placement != "" {
		o.PlacementAddresses = strings.Split(raw.placement, ",")
	}
	o.ActorsDisseminateTimeout = raw.actorsDisseminateTimeout
	o.SchedulerAddresses = raw.scheduler
	if !c.set["scheduler-host-address"] {
		if v := c.getenv(envSchedulerHostAddress); v != "" {
			o.SchedulerAddresses = strings.Split(v, ",")
		}
	}
	o.SchedulerJobStreams = raw.schedulerJobStreams
	if o.SchedulerJobStreams < 1 {
		c.fail("scheduler-job-streams", "must define at least 1 scheduler stream, got %d", o.SchedulerJobStreams)
	}
	if raw.enableProfiling {
		o.EnableProfiling = true
		o.ProfilePort = c.port("profile-port", raw.profilePort)
	}
	c.ignore("unix-domain-socket", raw.unixDomainSocket, "the Dapr API listens on TCP only")
	c.ignore("wait", strconv.FormatBool(raw.wait), "not implemented")
	c.ignore("actors-service", raw.actorsService, "no effect, as in daprd")
	c.ignore("reminders-service", raw.remindersService, "no effect, as in daprd")
}

// kubernetes checks what Kubernetes mode needs: the operator, and sentry
// for the certificate the operator is called with (daprd always gets one
// in Kubernetes, --enable-mtls or not).
func (c *converter) kubernetes() {
	o := c.o
	if strings.TrimSpace(o.ControlPlaneAddress) == "" {
		c.fail("control-plane-address", "is required with --mode kubernetes; point it at the operator, e.g. --control-plane-address dapr-api.dapr-system.svc:443")
	}
	if o.EnableMTLS {
		return // sentry, the trust anchors and the app ID are checked for --enable-mtls
	}
	if o.SentryAddress == "" {
		c.fail("sentry-address", "is required with --mode kubernetes: the sidecar calls the operator with a certificate from sentry")
	}
	if len(c.getenv(envTrustAnchors)) == 0 && o.TrustAnchorsFile == "" && c.getenv(envTrustAnchorsFile) == "" {
		c.fail("trust-anchors-file", "is required with --mode kubernetes (or set %s to the PEM, or %s to a file): it verifies sentry and the operator", envTrustAnchors, envTrustAnchorsFile)
	}
	if strings.TrimSpace(o.AppID) == "" {
		c.fail("app-id", "is required with --mode kubernetes; the app ID is part of the sidecar's SPIFFE identity")
	}
}

// defaultWasmCacheDir is tandem/wasm in the user's cache folder, or none.
func defaultWasmCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "tandem", "wasm")
}

func (c *converter) appWasm() {
	w := &c.o.AppWasm
	if w.Path == "" {
		return
	}
	switch {
	case c.o.AppPort != 0:
		c.fail("app-wasm", "and --app-port both name the app: give one (a Wasm app runs inside the sidecar and has no port)")
	case c.o.AppProtocol != "http":
		c.fail("app-wasm", "is an http app: drop --app-protocol %s", c.o.AppProtocol)
	case strings.TrimSpace(c.o.AppID) == "":
		c.fail("app-id", "is required with --app-wasm; give the app a unique ID, e.g. --app-id orders")
	}
	if w.MemoryMiB <= 0 || w.MemoryMiB > 4096 {
		c.fail("app-wasm-memory", "%d MiB: give 1 to 4096 (a wasm32 module addresses at most 4 GiB)", w.MemoryMiB)
	}
	if w.Timeout <= 0 {
		c.fail("app-wasm-timeout", "%s: give a positive duration such as 30s", w.Timeout)
	}
	if w.MaxInstances <= 0 {
		c.fail("app-wasm-instances", "%d: give a positive number", w.MaxInstances)
	}
}

func (c *converter) appHealth() {
	o, raw := c.o, c.raw
	// Non-positive values fall back to the defaults, as in daprd.
	o.AppHealth.Interval = time.Duration(raw.appHealthInterval) * time.Second
	if raw.appHealthInterval <= 0 {
		o.AppHealth.Interval = 5 * time.Second
	}
	o.AppHealth.Timeout = time.Duration(raw.appHealthTimeout) * time.Millisecond
	if raw.appHealthTimeout <= 0 {
		o.AppHealth.Timeout = 500 * time.Millisecond
	}
	if o.AppHealth.Threshold < 1 {
		o.AppHealth.Threshold = 3
	}
	if o.AppHealth.Timeout > o.AppHealth.Interval {
		c.fail("app-health-probe-timeout", "%s is longer than --app-health-probe-interval %s; make the timeout (milliseconds) smaller than the interval (seconds)",
			o.AppHealth.Timeout, o.AppHealth.Interval)
	}
	if o.AppHealth.Path == "" {
		o.AppHealth.Path = "/healthz"
	}
}

// size resolves a byte size from the quantity flag, else the deprecated
// integer flag (value << shift), else def. Negative means def, as in daprd.
func (c *converter) size(name, quantity, oldName string, old int, shift uint, def int) int {
	c.deprecated(oldName, "--"+name)
	v := def
	switch {
	case c.set[name]:
		n, err := parseQuantity(quantity)
		if err != nil {
			c.fail(name, "%q: %v; write a size like 4Mi, 512Ki or 1048576", quantity, err)
			return def
		}
		v = n
	case c.set[oldName]:
		if old > math.MaxInt>>shift {
			c.fail(oldName, "%d is too large", old)
			return def
		}
		v = old
		if old > 0 {
			v = old << shift
		}
	}
	if v < 0 {
		return def
	}
	return v
}

// parseQuantity parses a Kubernetes-style quantity as daprd does for
// --max-body-size: a number with an optional binary (Ki Mi Gi Ti Pi Ei) or
// decimal (k M G T P E) suffix.
func parseQuantity(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18},
	} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a number")
	}
	v := f * mult
	if v != math.Trunc(v) {
		return 0, errors.New("not a whole number of bytes")
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, errors.New("out of range")
	}
	return int(v), nil
}

// SlogLevel maps LogLevel to a slog level (fatal is above error).
func (o *Options) SlogLevel() slog.Level {
	level, _ := logging.ParseLevel(o.LogLevel)
	return level
}

// LogValue implements slog.LogValuer: the options worth seeing at startup,
// with secrets reduced to whether they are set.
func (o *Options) LogValue() slog.Value {
	isSet := func(s string) bool { return s != "" }
	return slog.GroupValue(
		slog.String("app_id", o.AppID),
		slog.Int("app_port", o.AppPort),
		slog.String("app_protocol", o.AppProtocol),
		slog.Int("http_port", o.HTTPPort),
		slog.Int("grpc_port", o.GRPCPort),
		slog.Int("internal_grpc_port", o.InternalGRPCPort),
		slog.Any("resources_paths", o.ResourcesPaths),
		slog.Any("config_paths", o.ConfigPaths),
		slog.Bool("mtls", o.EnableMTLS),
		slog.String("sentry_address", o.SentryAddress),
		slog.String("namespace", o.Namespace),
		slog.Bool("api_token_set", isSet(o.APIToken)),
		slog.Bool("app_api_token_set", isSet(o.AppAPIToken)),
		slog.Bool("sentry_token_set", isSet(o.SentryToken)),
		slog.Bool("metrics", o.MetricsEnabled),
		slog.Int("metrics_port", o.MetricsPort),
		slog.Int("gomaxprocs", runtime.GOMAXPROCS(0)),
	)
}

// Usage writes the flag reference, grouped, followed by the environment
// variables tandemd reads.
func Usage(w io.Writer) {
	r := newRegistry(&Options{}, &rawFlags{})
	fmt.Fprintf(w, "Usage: tandemd [flags]\n\nTandem sidecar, a drop-in for Dapr's daprd. Flags take one or two dashes.\n")
	for _, g := range r.groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			f := r.fs.Lookup(name)
			valueName, usage := flag.UnquoteUsage(f)
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
				valueName = ""
			} else if valueName == "" || valueName == "value" {
				valueName = "string"
			}
			line := "  --" + name
			if valueName != "" {
				line += " " + strings.ToLower(valueName)
			}
			fmt.Fprintln(w, line)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0s" {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "        %s\n", usage)
		}
	}
	fmt.Fprintf(w, `
Environment:
  %s, %s    API token required from the app / sent to the app
  %s, %s    trust anchors PEM / file (mTLS)
  %s, %s    sentry join token / token file
  %s    app ID to request a certificate for, if not --app-id
  %s (default "default"), %s, %s
  %s, %s
`, envAPIToken, envAppAPIToken, envTrustAnchors, envTrustAnchorsFile, envSentryToken, envSentryTokenFile,
		envSentryLocalIdentity, envNamespace, envPodName, envHostIP, envControlPlaneNS, envControlPlaneTD)
}
