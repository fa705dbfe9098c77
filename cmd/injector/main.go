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
// root rotation. /healthz answers 503 until both are in place.
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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	corev1 "k8s.io/api/core/v1"
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
	var metrics bool
	var metricsPort string
	fs.BoolVar(&metrics, "enable-metrics", true, "Accepted for compatibility with Dapr's chart")
	fs.StringVar(&metricsPort, "metrics-port", "9090", "Accepted for compatibility with Dapr's chart")
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
	if err := serve(ctx, f, opts, or(getenv("DAPR_TRUST_ANCHORS_FILE"), defaultTrustAnchorsFile), log); err != nil {
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

func serve(ctx context.Context, f *flags, opts *injector.Options, anchorsFile string, log *slog.Logger) error {
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
	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/mutate", &injector.Handler{Options: opts, Log: log})
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
	return task.Run(ctx, log, task.Stage{Name: "serve", Tasks: append(idTasks,
		httpTask("webhook", web, func() error { return ignoreClosed(web.ServeTLS(lis, "", "")) }),
		httpTask("healthz", health, func() error { return ignoreClosed(health.Serve(hlis)) }),
		task.Task{Name: "webhook caBundle", Run: bundle.Run},
	)})
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
