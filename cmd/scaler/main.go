// Command scaler is Tandem's KEDA external scaler (package scaler): KEDA's
// externalscaler.ExternalScaler gRPC service on --port, answering per app
// ID with the load its sidecars report in their metadata API (the
// subscriptions' broker backlog or in-flight messages, invocations in
// flight, active actors).
//
// Sidecars are found by --sidecars (fixed metadata endpoints,
// self-hosted), by --dns-template (the operator's headless Service
// "{app}-dapr.{namespace}.svc.cluster.local", each pod's address at
// --sidecar-port, 3500 by default) or, with --mode kubernetes and neither,
// through the API server: the EndpointSlices of the app's "<app-id>-dapr"
// Service, listed and watched, each serving endpoint asked at
// --sidecar-port (0: the slice's dapr-http port). With --resources-path,
// an app with no sidecar running (scaled to zero) is measured at its
// broker: the pub/sub Component named by the ScaledObject's pubsubName is
// opened as the app would open it, and asked for the topic's backlog.
//
// KEDA reaches it in plaintext, or over TLS (its trigger's caCert,
// tlsClientCert, tlsClientKey) with --tls-enabled (a certificate from
// sentry, spiffe://<trust-domain>/ns/<NAMESPACE>/dapr-scaler, valid for
// dapr-scaler.<NAMESPACE>.svc) or --tls-cert-file and --tls-key-file;
// --tls-client-ca-file then requires KEDA's client certificate.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/endpointslices"
	"github.com/tandemrun/tandem/internal/flagvalue"
	"github.com/tandemrun/tandem/internal/kubeclient"
	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/scaler"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Options are the command line.
type Options struct {
	Port   int
	Listen string
	// HealthzPort serves GET /healthz (0: none).
	HealthzPort   int
	HealthzListen string
	Mode          string
	Sidecars      []string
	DNSTemplate   string
	// SidecarPort is where sidecars answer /v1.0/metadata; 0: 3500 with
	// DNSTemplate, the slice's dapr-http port through the API server.
	SidecarPort int
	Kubeconfig  string
	// WatchNamespace limits the API server discovery to one namespace.
	WatchNamespace string
	Poll           time.Duration
	Resources      []string
	LogLevel       string
	LogAsJSON      bool
	Version        bool
	// APIToken is DAPR_API_TOKEN, sent to the sidecars' metadata API.
	APIToken string

	// TLS towards KEDA.
	TLSEnabled       bool // a certificate from sentry
	TLSCertFile      string
	TLSKeyFile       string
	TLSClientCAFile  string
	TrustDomain      string
	TrustAnchorsFile string
	SentryAddress    string
	// Namespace is NAMESPACE: the scaler's own, part of its identity.
	Namespace string
	// SentryTokenFile is DAPR_SENTRY_TOKEN_FILE.
	SentryTokenFile string
}

// kubernetes reports whether sidecars are found through the API server.
func (o Options) kubernetes() bool {
	return strings.EqualFold(o.Mode, "kubernetes") && len(o.Sidecars) == 0 && o.DNSTemplate == ""
}

// ParseFlags reads the command line.
func ParseFlags(args []string, stderr io.Writer, getenv func(string) string) (Options, error) {
	o := Options{}
	fs := flag.NewFlagSet("scaler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Port, "port", 6000, "the gRPC port KEDA calls (ScaledObject trigger metadata scalerAddress: <service>:<port>)")
	fs.StringVar(&o.Listen, "listen-address", "", "the address to listen on (default: all)")
	fs.IntVar(&o.HealthzPort, "healthz-port", 0, "serve GET /healthz on this port, 200 once the scaler serves (and, in kubernetes mode, has listed the EndpointSlices); 0 for none")
	fs.StringVar(&o.HealthzListen, "healthz-listen-address", "", "the address /healthz listens on (default: all)")
	fs.StringVar(&o.Mode, "mode", "standalone", "standalone or kubernetes: in kubernetes mode, without --sidecars and --dns-template, an app's sidecars are the endpoints of the EndpointSlices of its <app-id>-dapr Service, watched through the API server")
	fs.Var(flagvalue.NewList(&o.Sidecars), "sidecars", "metadata endpoints of the sidecars, comma-separated or repeated (http://127.0.0.1:3500); self-hosted")
	fs.StringVar(&o.DNSTemplate, "dns-template", "", `find an app's sidecars by resolving this name, {app} and {namespace} replaced ("{app}-dapr.{namespace}.svc.cluster.local")`)
	fs.IntVar(&o.SidecarPort, "sidecar-port", 0, "the sidecars' port serving /v1.0/metadata: 3501 for their public port; 0 means 3500 (the HTTP API port) with --dns-template, and the EndpointSlice's dapr-http port in kubernetes mode (DAPR_API_TOKEN is sent when set)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (kubernetes mode; default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&o.WatchNamespace, "watch-namespace", "", "kubernetes mode: watch the EndpointSlices of this namespace only (default: all)")
	fs.BoolVar(&o.TLSEnabled, "tls-enabled", false, "serve KEDA over TLS with a certificate from sentry (spiffe://<trust-domain>/ns/<NAMESPACE>/dapr-scaler, valid for dapr-scaler.<NAMESPACE>.svc)")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", "", "serve KEDA over TLS with this PEM certificate chain (with --tls-key-file; reloaded when it changes)")
	fs.StringVar(&o.TLSKeyFile, "tls-key-file", "", "the PEM private key of --tls-cert-file")
	fs.StringVar(&o.TLSClientCAFile, "tls-client-ca-file", "", "with TLS, require a client certificate signed by one of these PEM CAs (KEDA's tlsClientCert and tlsClientKey; reloaded when it changes)")
	fs.StringVar(&o.TrustDomain, "trust-domain", "localhost", "the control plane's trust domain (with --tls-enabled)")
	fs.StringVar(&o.TrustAnchorsFile, "trust-anchors-file", "/var/run/secrets/dapr.io/tls/ca.crt", "the control plane's PEM trust anchors (with --tls-enabled)")
	fs.StringVar(&o.SentryAddress, "sentry-address", "", "sentry's address (with --tls-enabled; default dapr-sentry.<NAMESPACE>.svc:443)")
	fs.Var(flagvalue.NewList(&o.Resources), "resources-path", "folders of pub/sub Component files: with an app scaled to zero, the broker named by scalerMetadata pubsubName is asked for the topic's backlog directly (as the app's consumer)")
	fs.DurationVar(&o.Poll, "poll-interval", 250*time.Millisecond, "how often StreamIsActive looks at the sidecars again")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn, error or fatal")
	fs.BoolVar(&o.LogAsJSON, "log-as-json", false, "log in JSON")
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.APIToken = getenv("DAPR_API_TOKEN")
	o.Namespace = cmp.Or(getenv("NAMESPACE"), "default")
	o.SentryTokenFile = getenv("DAPR_SENTRY_TOKEN_FILE")
	if o.SentryAddress == "" {
		o.SentryAddress = "dapr-sentry." + o.Namespace + ".svc:443"
	}
	if o.Version {
		return o, nil
	}
	switch strings.ToLower(o.Mode) {
	case "standalone", "kubernetes":
	default:
		return o, fmt.Errorf("--mode %q is not standalone or kubernetes", o.Mode)
	}
	if len(o.Sidecars) > 0 && o.DNSTemplate != "" {
		return o, errors.New("give the sidecars to ask with --sidecars (self-hosted) or --dns-template, not both")
	}
	if len(o.Sidecars) == 0 && o.DNSTemplate == "" && !strings.EqualFold(o.Mode, "kubernetes") {
		return o, errors.New("give the sidecars to ask: --sidecars (self-hosted), --dns-template, or --mode kubernetes (through the API server)")
	}
	if _, err := logging.ParseLevel(o.LogLevel); err != nil {
		return o, err
	}
	if o.Port < 0 || o.Port > 65535 || o.SidecarPort < 0 || o.SidecarPort > 65535 || o.HealthzPort < 0 || o.HealthzPort > 65535 {
		return o, errors.New("--port, --healthz-port and --sidecar-port must be TCP ports")
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return o, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	if o.TLSEnabled && o.TLSCertFile != "" {
		return o, errors.New("--tls-enabled (a certificate from sentry) and --tls-cert-file exclude each other")
	}
	if o.TLSClientCAFile != "" && !o.TLSEnabled && o.TLSCertFile == "" {
		return o, errors.New("--tls-client-ca-file needs TLS: --tls-enabled or --tls-cert-file")
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := ParseFlags(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "scaler:", err)
		return 2
	}
	if o.Version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	level, _ := logging.ParseLevel(o.LogLevel)
	log := logging.New(stdout, level, o.LogAsJSON, "component", "scaler")
	if err := serve(ctx, o, log); err != nil {
		log.Error("scaler stopped", "error", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, o Options, log *slog.Logger) error {
	var plan task.Plan
	serving, discovery, brokerStage, idStage := plan.Stage("serve", 0), plan.Stage("discovery", 0), plan.Stage("brokers", 0), plan.Stage("identity", 0)
	defer plan.Abort(ctx, log)

	// ready says whether the scaler can answer: it serves, and the API
	// server discovery (if used) has listed once.
	listed := func() bool { return true }
	var finder scaler.Finder
	switch {
	case len(o.Sidecars) > 0:
		finder = scaler.Static(o.Sidecars...)
	case o.DNSTemplate != "":
		finder = scaler.DNS(o.DNSTemplate, cmp.Or(o.SidecarPort, 3500), nil)
	default:
		cfg, from, err := kubeclient.Config(o.Kubeconfig)
		if err != nil {
			return err
		}
		cs, err := kubecore.New(cfg)
		if err != nil {
			return fmt.Errorf("kubernetes client (%s): %w", from, err)
		}
		w := endpointslices.New(endpointslices.Options{Client: cs, Namespace: o.WatchNamespace, Port: scaler.SidecarPortName,
			Log: log.With("component", "endpointslices")})
		discovery.Add(task.Task{Name: "EndpointSlice watch", Critical: true, Run: w.Run})
		finder = scaler.EndpointSlices(w, o.SidecarPort)
		listed = w.Synced
		log.Info("finding sidecars through the API server: the EndpointSlices of each app's <app-id>-dapr Service",
			"api_server", cfg.Host, "credentials", from, "namespace", cmp.Or(o.WatchNamespace, "(all)"), "sidecar_port", o.SidecarPort)
	}
	reader := &scaler.Reader{Finder: finder, APIToken: o.APIToken}
	so := scaler.Options{Reports: reader.Reports, Poll: o.Poll, Log: log}

	if o.TLSEnabled || o.TLSCertFile != "" {
		var src *identity.Source
		if o.TLSEnabled {
			td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
			if err != nil {
				return fmt.Errorf("--trust-domain %q: %w", o.TrustDomain, err)
			}
			id, err := spiffeid.FromSegments(td, "ns", o.Namespace, "dapr-scaler")
			if err != nil {
				return fmt.Errorf("the scaler's identity in namespace %q: %w", o.Namespace, err)
			}
			var idTasks []task.Task
			src, idTasks, err = sentryclient.ControlPlane{Kubernetes: strings.EqualFold(o.Mode, "kubernetes"), ID: id, TrustDomain: o.TrustDomain,
				SentryAddress: o.SentryAddress, AnchorsFile: o.TrustAnchorsFile, TokenFile: o.SentryTokenFile, Log: log}.Start(ctx)
			if err != nil {
				return err
			}
			idStage.Add(idTasks...)
			log.Info("certificate obtained from sentry", "spiffe_id", id.String(), "sentry_address", o.SentryAddress)
		}
		st, err := newServerTLS(src, o.TLSCertFile, o.TLSKeyFile, o.TLSClientCAFile, log)
		if err != nil {
			return err
		}
		if t, ok := st.task(); ok {
			idStage.Add(t)
		}
		so.ServerOptions = append(so.ServerOptions, st.serverOption())
		log.Info("serving KEDA over TLS", "certificate", cmp.Or(o.TLSCertFile, "sentry"), "client_ca_file", o.TLSClientCAFile)
	}
	if len(o.Resources) > 0 {
		b, err := newBrokers(o.Resources, log)
		if err != nil {
			return err
		}
		so.Broker = b.Backlog
		brokerStage.Add(task.Cleanup("brokers", b.Close))
	}
	srv, err := scaler.New(so)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(o.Listen, strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w (is another process using it? set --port)", o.Port, err)
	}
	serving.Add(task.Task{Name: "external scaler", Critical: true, Run: func(ctx context.Context) error { return srv.Run(ctx, lis) }})
	if o.HealthzPort > 0 {
		hlis, err := net.Listen("tcp", net.JoinHostPort(o.HealthzListen, strconv.Itoa(o.HealthzPort)))
		if err != nil {
			return fmt.Errorf("listen on --healthz-port %d: %w", o.HealthzPort, err)
		}
		serving.Add(healthzTask(hlis, listed))
	}
	return plan.Run(ctx, log)
}

// healthzTask serves GET /healthz on lis: 200 when ready says so, else 503.
func healthzTask(lis net.Listener, ready func() bool) task.Task {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "the EndpointSlices are not listed yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return task.Task{Name: "healthz", Run: func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- srv.Serve(lis) }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			<-done
			return nil
		}
	}}
}
