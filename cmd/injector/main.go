// Command injector is Tandem's sidecar injector, a drop-in for Dapr's: a
// mutating admission webhook on --port (HTTPS, path /mutate) that adds the
// tandemd sidecar to pods annotated dapr.io/enabled, and /healthz on
// --healthz-port.
//
// It takes Dapr injector's flags and environment (SIDECAR_IMAGE,
// SIDECAR_IMAGE_PULL_POLICY, NAMESPACE, KUBE_CLUSTER_DOMAIN,
// SENTRY_ADDRESS...). Its serving certificate is read from --tls-cert-file
// and --tls-key-file (a Secret the chart creates, whose CA is the
// webhook's caBundle) and reloaded when the files change.
package main

import (
	"context"
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
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tandemrun/tandem/injector"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// flags are Dapr injector's (cmd/injector/options) plus the TLS files.
type flags struct {
	port, healthzPort          int
	listenAddress, healthzAddr string
	certFile, keyFile          string
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
	fs.StringVar(&f.certFile, "tls-cert-file", "/var/run/secrets/tandem.io/webhook/tls.crt", "Serving certificate of the webhook (PEM)")
	fs.StringVar(&f.keyFile, "tls-key-file", "/var/run/secrets/tandem.io/webhook/tls.key", "Serving key of the webhook (PEM)")
	fs.StringVar(&f.logLevel, "log-level", "info", "Log level: debug, info, warn or error")
	fs.BoolVar(&f.logAsJSON, "log-as-json", false, "Log in JSON")
	fs.BoolVar(&f.version, "version", false, "Print the version and exit")
	var ignored string
	fs.StringVar(&ignored, "kubeconfig", "", "Accepted for compatibility; the injector needs no API access")
	var scheduler bool
	fs.BoolVar(&scheduler, "scheduler-enabled", true, "Give sidecars the scheduler's address")
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
	if err := serve(ctx, f, opts, log); err != nil {
		log.Error("injector failed", "error", err)
		return 1
	}
	return 0
}

// optionsFromEnv reads the settings Dapr's chart gives its injector as
// environment variables.
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
		ControlPlaneTrustDomain: or(getenv("CONTROL_PLANE_TRUST_DOMAIN"), "cluster.local"),
		SentryAddress:           or(getenv("SENTRY_ADDRESS"), svc("dapr-sentry", "443")),
		OperatorAddress:         or(getenv("OPERATOR_ADDRESS"), svc("dapr-api", "443")),
		PlacementAddress:        getenv("PLACEMENT_ADDRESS"),
		SchedulerAddress:        getenv("SCHEDULER_ADDRESS"),
		TrustBundleConfigMap:    or(getenv("TRUST_BUNDLE_CONFIGMAP"), "dapr-trust-bundle"),
	}, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func serve(ctx context.Context, f *flags, opts *injector.Options, log *slog.Logger) error {
	certs := &certFiles{cert: f.certFile, key: f.keyFile}
	if err := certs.load(); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(f.listenAddress, strconv.Itoa(f.port)))
	if err != nil {
		return fmt.Errorf("webhook: listen: %w", err)
	}
	hlis, err := net.Listen("tcp", net.JoinHostPort(f.healthzAddr, strconv.Itoa(f.healthzPort)))
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("healthz: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mutate", &injector.Handler{Options: opts, Log: log})
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}}
	health := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})}
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
	return task.Run(ctx, log, task.Stage{Name: "serve", Tasks: []task.Task{
		httpTask("webhook", web, func() error { return ignoreClosed(web.ServeTLS(lis, "", "")) }),
		httpTask("healthz", health, func() error { return ignoreClosed(health.Serve(hlis)) }),
		{Name: "certificate reload", Run: certs.watch},
	}})
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// certFiles is the serving certificate, reloaded when its files change
// (a renewed Secret).
type certFiles struct {
	cert, key string
	mu        sync.RWMutex
	current   *tls.Certificate
}

func (c *certFiles) load() error {
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	c.mu.Lock()
	c.current = &pair
	c.mu.Unlock()
	return nil
}

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.current, nil
}

func (c *certFiles) watch(ctx context.Context) error {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = c.load() // a half-written pair is retried at the next tick
		}
	}
}
