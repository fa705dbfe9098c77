// Command injector is Tandem's sidecar injector, a drop-in for Dapr's: a
// mutating admission webhook on --port (HTTPS, path /mutate) that adds the
// tandemd sidecar to pods annotated dapr.io/enabled, and /healthz on
// --healthz-port.
//
// It takes Dapr injector's flags and environment (SIDECAR_IMAGE,
// SIDECAR_IMAGE_PULL_POLICY, NAMESPACE, KUBE_CLUSTER_DOMAIN,
// DAPR_SENTRY_ADDRESS, DAPR_CONTROL_PLANE_TRUST_DOMAIN,
// DAPR_TRUST_ANCHORS_FILE...). As Dapr's, it has no certificate of its own:
// it proves itself to sentry with its pod's projected service account token
// (the pod is annotated dapr.io/control-plane: injector), serves the
// webhook with the X.509 SVID it gets back (valid for
// dapr-sidecar-injector.<namespace>.svc, renewed before it expires), and
// patches the trust anchors into the caBundle of the
// dapr-sidecar-injector MutatingWebhookConfiguration, again after every
// root rotation. /healthz answers 503 until both are in place. As Dapr's,
// only pods created by the workload controllers, by members of
// system:masters or by the service accounts of ALLOWED_SERVICE_ACCOUNTS get
// a sidecar; Dapr's injection counters are on --metrics-port.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tandemrun/tandem/injector"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Dapr's paths of the projected token and the trust bundle in the pod.
const (
	defaultTrustAnchorsFile = "/var/run/secrets/dapr.io/tls/ca.crt"
	defaultSentryTokenFile  = "/var/run/secrets/dapr.io/sentrytoken/token"
)

// flags are Dapr injector's (cmd/injector/options) plus --sentry-token-file.
type flags struct {
	port, healthzPort          int
	listenAddress, healthzAddr string
	kubeconfig, tokenFile      string
	logLevel                   string
	logAsJSON, version         bool
	metrics                    bool
	metricsPort, metricsAddr   string
}

func parse(args []string, out io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("injector", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&f.port, "port", 4000, "Port of the webhook (HTTPS)")
	fs.StringVar(&f.listenAddress, "listen-address", "", "Address of the webhook")
	fs.IntVar(&f.healthzPort, "healthz-port", 8080, "Port of /healthz")
	fs.StringVar(&f.healthzAddr, "healthz-listen-address", "", "Address of /healthz")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Kubeconfig of the API server (in-cluster configuration when empty)")
	fs.StringVar(&f.tokenFile, "sentry-token-file", defaultSentryTokenFile, "The pod's projected service account token, sent to sentry")
	fs.StringVar(&f.logLevel, "log-level", "info", "Log level: debug, info, warn or error")
	fs.BoolVar(&f.logAsJSON, "log-as-json", false, "Log in JSON")
	fs.BoolVar(&f.version, "version", false, "Print the version and exit")
	var scheduler bool
	fs.BoolVar(&scheduler, "scheduler-enabled", true, "Give sidecars the scheduler's address")
	fs.BoolVar(&f.metrics, "enable-metrics", true, "Serve Prometheus metrics")
	fs.StringVar(&f.metricsPort, "metrics-port", "9090", "Port of /metrics")
	fs.StringVar(&f.metricsAddr, "metrics-listen-address", "", "Address of /metrics (all interfaces if empty)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	f, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "injector:", err)
		return 2
	}
	if f.version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	level, err := logging.ParseLevel(f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "injector:", err)
		return 2
	}
	log := logging.New(stdout, level, f.logAsJSON, "component", "injector")
	opts, err := optionsFromEnv(getenv)
	if err != nil {
		log.Error("injector configuration", "error", err)
		return 2
	}
	callers, err := injector.NewCallers(allowedCallers(getenv, log), nil)
	if err != nil {
		log.Error("injector configuration: ALLOWED_SERVICE_ACCOUNTS", "error", err)
		return 2
	}
	if err := serve(ctx, f, opts, callers, or(getenv("DAPR_TRUST_ANCHORS_FILE"), defaultTrustAnchorsFile), log); err != nil {
		log.Error("injector failed", "error", err)
		return 1
	}
	return 0
}

// optionsFromEnv reads the settings Dapr's chart gives its injector as
// environment variables (and the names Tandem's first chart used).
func optionsFromEnv(getenv func(string) string) (*injector.Options, error) {
	ns := getenv("NAMESPACE")
	if ns == "" {
		return nil, errors.New("NAMESPACE (the control plane's namespace) is required")
	}
	image := getenv("SIDECAR_IMAGE")
	if image == "" {
		return nil, errors.New("SIDECAR_IMAGE (the tandemd image) is required")
	}
	domain := or(getenv("KUBE_CLUSTER_DOMAIN"), "cluster.local")
	svc := func(name, port string) string { return name + "." + ns + ".svc." + domain + ":" + port }
	return &injector.Options{
		Image: image, ImagePullPolicy: corev1.PullPolicy(or(getenv("SIDECAR_IMAGE_PULL_POLICY"), string(corev1.PullIfNotPresent))),
		ControlPlaneNamespace:   ns,
		ControlPlaneTrustDomain: or(getenv("DAPR_CONTROL_PLANE_TRUST_DOMAIN"), getenv("CONTROL_PLANE_TRUST_DOMAIN"), "cluster.local"),
		SentryAddress:           or(getenv("DAPR_SENTRY_ADDRESS"), getenv("SENTRY_ADDRESS"), svc("dapr-sentry", "443")),
		OperatorAddress:         or(getenv("OPERATOR_ADDRESS"), svc("dapr-api", "443")),
		PlacementAddress:        getenv("PLACEMENT_ADDRESS"),
		SchedulerAddress:        getenv("SCHEDULER_ADDRESS"),
		TrustBundleConfigMap:    or(getenv("TRUST_BUNDLE_CONFIGMAP"), "dapr-trust-bundle"),
		ClassicSidecarDefault:   strings.EqualFold(getenv("NATIVE_SIDECAR_ENABLED"), "false"),
	}, nil
}

// allowedCallers are the service account patterns whose pods get a
// sidecar: Dapr's defaults and those of ALLOWED_SERVICE_ACCOUNTS (and of the
// deprecated ALLOWED_SERVICE_ACCOUNTS_PREFIX_NAMES), comma-separated.
func allowedCallers(getenv func(string) string, log *slog.Logger) []string {
	out := slices.Clone(injector.DefaultAllowedCallers)
	if v := getenv("ALLOWED_SERVICE_ACCOUNTS"); v != "" {
		out = append(out, strings.Split(v, ",")...)
	}
	if v := getenv("ALLOWED_SERVICE_ACCOUNTS_PREFIX_NAMES"); v != "" {
		log.Warn("ALLOWED_SERVICE_ACCOUNTS_PREFIX_NAMES is deprecated; use ALLOWED_SERVICE_ACCOUNTS, which takes glob patterns")
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

// callerUIDs looks up the UIDs of the service accounts patterns name
// exactly, as Dapr's injector does; a failed look-up leaves the patterns
// alone to decide.
func callerUIDs(ctx context.Context, kube kubernetes.Interface, c *injector.Callers, log *slog.Logger) []string {
	exact := c.Exact()
	if len(exact) == 0 {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := kube.CoreV1().ServiceAccounts("").List(lctx, metav1.ListOptions{})
	if err != nil {
		log.Warn("cannot list service accounts; allowed callers are matched by name only", "error", err)
		return nil
	}
	var uids []string
	for _, e := range exact {
		for _, sa := range list.Items {
			if sa.Namespace == e[0] && sa.Name == e[1] {
				uids = append(uids, string(sa.UID))
			}
		}
	}
	return uids
}

// or returns the first of vs that is not empty.
func or(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}

// newKey makes the webhook certificate's key: RSA 2048, as Dapr's injector
// (some managed API servers refuse the sidecars' Ed25519 serving
// certificates, and tools that check Dapr's webhook expect RSA). One key
// per renewal, so its cost (~0.1 s) is paid once a day.
func newKey() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }

func serve(ctx context.Context, f *flags, opts *injector.Options, callers *injector.Callers, anchorsFile string, log *slog.Logger) error {
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w (give --kubeconfig outside a cluster)", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	id, err := spiffeid.FromSegments(spiffeid.RequireTrustDomainFromString(opts.ControlPlaneTrustDomain), "ns", opts.ControlPlaneNamespace, "dapr-injector")
	if err != nil {
		return fmt.Errorf("injector identity: %w", err)
	}
	src, idTasks, err := sentryclient.Service{ID: id, SentryAddress: opts.SentryAddress, AnchorsFile: anchorsFile,
		TokenFile: f.tokenFile, NewKey: newKey, Log: log}.Start(ctx)
	if err != nil {
		return err
	}
	log.Info("certificate obtained from sentry", "spiffe_id", id.String(), "sentry_address", opts.SentryAddress)

	lis, err := net.Listen("tcp", net.JoinHostPort(f.listenAddress, strconv.Itoa(f.port)))
	if err != nil {
		return fmt.Errorf("webhook: listen: %w", err)
	}
	hlis, err := net.Listen("tcp", net.JoinHostPort(f.healthzAddr, strconv.Itoa(f.healthzPort)))
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("healthz: listen: %w", err)
	}
	callers.AllowUIDs(callerUIDs(ctx, kube, callers, log)...)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/mutate", &injector.Handler{Options: opts, Callers: callers, Metrics: injector.NewMetrics(reg), Log: log})
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: tlsconfig.GetCertificate(src)}}
	health := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "the webhook's caBundle is not set yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	bundle := &injector.CABundle{Client: kube.AdmissionregistrationV1().MutatingWebhookConfigurations(), Source: src,
		Ready: func() { ready.Store(true) }, Log: log}
	log.Info("injector listening", "webhook_address", lis.Addr().String(), "healthz_address", hlis.Addr().String(), "sidecar_image", opts.Image)
	httpTask := func(name string, s *http.Server, run func() error) task.Task {
		return task.Task{Name: name, Critical: true, Run: func(ctx context.Context) error {
			done := make(chan error, 1)
			go func() { done <- run() }()
			select {
			case err := <-done:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(sctx)
			<-done
			return nil
		}}
	}
	tasks := append(idTasks,
		httpTask("webhook", web, func() error { return ignoreClosed(web.ServeTLS(lis, "", "")) }),
		httpTask("healthz", health, func() error { return ignoreClosed(health.Serve(hlis)) }),
		task.Task{Name: "webhook caBundle", Run: bundle.Run},
	)
	if f.metrics {
		mlis, err := net.Listen("tcp", net.JoinHostPort(f.metricsAddr, f.metricsPort))
		if err != nil {
			_ = lis.Close()
			_ = hlis.Close()
			return fmt.Errorf("metrics: listen: %w", err)
		}
		mmux := http.NewServeMux()
		mmux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metrics := &http.Server{Handler: mmux, ReadHeaderTimeout: 5 * time.Second}
		tasks = append(tasks, httpTask("metrics", metrics, func() error { return ignoreClosed(metrics.Serve(mlis)) }))
	}
	return task.Run(ctx, log, task.Stage{Name: "serve", Tasks: tasks})
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
