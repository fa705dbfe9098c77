// Command operator is Tandem's Kubernetes operator, a drop-in for Dapr's:
// it accepts Dapr operator's flags, watches the dapr.io resources and
// serves them to sidecars (tandemd or daprd) over Dapr's operator protocol
// with mTLS on --port, and keeps the headless <app-id>-dapr Service of every
// annotated Deployment and StatefulSet (on the elected leader only).
//
// Its own certificate comes from sentry, which it proves itself to with the
// pod's projected service account token (the pod carries
// dapr.io/control-plane: operator).
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
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
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/operator/api"
	"github.com/tandemrun/tandem/operator/server"
	"github.com/tandemrun/tandem/operator/services"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// watchListGate is client-go's feature gate for streaming an informer's
// initial list over a watch (on by default since client-go 0.35).
const watchListGate = "KUBE_FEATURE_WatchListClient"

func main() {
	// Informers list, then watch, as Dapr's operator's do (client-go 0.32):
	// an API server, or a test double of one, that answers a streamed
	// list with events but no initial-events bookmark makes client-go drop
	// those events. KUBE_FEATURE_WatchListClient=true turns streaming back on.
	if _, set := os.LookupEnv(watchListGate); !set {
		_ = os.Setenv(watchListGate, "false")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "operator:", err)
		return 2
	}
	if o.Version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	level, _ := logging.ParseLevel(o.LogLevel)
	log := logging.New(stdout, level, o.LogAsJSON, "component", "operator")
	if err := serve(ctx, o, log, getenv); err != nil {
		log.Error("operator failed", "error", err)
		return 1
	}
	log.Info("operator shut down gracefully")
	return 0
}

func restConfig(o *Options) (*rest.Config, error) {
	if o.Kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	}
	return rest.InClusterConfig()
}

// controlPlane is what Dapr's operator reads from the daprsystem
// Configuration.
type controlPlane struct{ sentryAddress, trustDomain string }

func readControlPlane(ctx context.Context, c client.Client, namespace, name string) (controlPlane, error) {
	cfg := &unstructured.Unstructured{}
	cfg.SetGroupVersionKind(schema.GroupVersionKind{Group: "dapr.io", Version: "v1alpha1", Kind: "Configuration"})
	err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cfg)
	if err != nil {
		return controlPlane{}, fmt.Errorf("configuration %s/%s: %w", namespace, name, err)
	}
	addr, _, _ := unstructured.NestedString(cfg.Object, "spec", "mtls", "sentryAddress")
	td, _, _ := unstructured.NestedString(cfg.Object, "spec", "mtls", "controlPlaneTrustDomain")
	return controlPlane{sentryAddress: addr, trustDomain: td}, nil
}

func serve(ctx context.Context, o *Options, log *slog.Logger, getenv func(string) string) error {
	log.Info("starting Tandem operator", "version", version)
	for _, n := range o.ignoredNames() {
		log.Warn("Dapr operator flag accepted but ignored (not needed by Tandem)", "flag", "--"+n, "value", o.Ignored[n])
	}
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}
	cfg, err := restConfig(o)
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	scheme, err := api.NewScheme()
	if err != nil {
		return err
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	cp, err := readControlPlane(ctx, direct, namespace, o.Config)
	if err != nil {
		log.Warn("no control-plane Configuration; using defaults", "error", err)
	}
	if o.SentryAddress != "" {
		cp.sentryAddress = o.SentryAddress
	}
	if cp.sentryAddress == "" {
		cp.sentryAddress = "dapr-sentry." + namespace + ".svc:443"
	}
	if cp.trustDomain == "" {
		cp.trustDomain = "cluster.local"
	}
	id, err := spiffeid.FromSegments(spiffeid.RequireTrustDomainFromString(cp.trustDomain), "ns", namespace, "dapr-operator")
	if err != nil {
		return fmt.Errorf("operator identity: %w", err)
	}

	var plan task.Plan
	serving := plan.Stage("serve", 0)
	defer plan.Abort(ctx, log)
	// An RSA key, as Dapr's operator: its certificate also serves the
	// conversion webhook to the API server, and some refuse Ed25519.
	newKey := func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }
	src, idTasks, err := sentryclient.Service{ID: id, SentryAddress: cp.sentryAddress, AnchorsFile: o.TrustAnchorsFile,
		TokenFile: o.SentryTokenFile, NewKey: newKey, Log: log}.Start(ctx)
	if err != nil {
		return err
	}
	serving.Add(idTasks...)
	log.Info("certificate obtained from sentry", "spiffe_id", id.String(), "sentry_address", cp.sentryAddress)

	mgr, err := newManager(cfg, o, namespace, log)
	if err != nil {
		return err
	}
	if !o.DisableServiceReconciler {
		if err := services.Setup(mgr, log.With("controller", "dapr-services")); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(o.ListenAddress, strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("operator API: listen: %w (choose another --port)", err)
	}
	srv, err := server.New(server.Options{Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Source: src, Listener: lis, Log: log})
	if err != nil {
		_ = lis.Close()
		return err
	}
	// /healthz and /readyz answer once the caches have synced and the API
	// serves, as Dapr's operator's /healthz does.
	apiServing := func(*http.Request) error {
		select {
		case <-srv.Ready():
			return nil
		default:
			return errors.New("the operator API is not serving yet: its caches are still syncing with the API server")
		}
	}
	if err := mgr.AddHealthzCheck("operator-api", apiServing); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("operator-api", apiServing); err != nil {
		return err
	}
	serving.Add(
		task.Task{Name: "controller manager", Critical: true, Run: mgr.Start},
		task.Task{Name: "operator API", Critical: true, Run: srv.Run},
	)
	if o.WebhookPort != 0 {
		serving.Add(webhookTask(o, src, log))
	}
	if o.XDSPort != 0 {
		t, err := xdsTask(cfg, o, src, log)
		if err != nil {
			return err
		}
		serving.Add(t)
	}
	return plan.Run(ctx, log)
}

// newManager builds controller-runtime's manager: the shared cache, the
// leader election of the writing controllers, /healthz and /metrics.
func newManager(cfg *rest.Config, o *Options, namespace string, log *slog.Logger) (ctrl.Manager, error) {
	scheme, err := api.NewScheme()
	if err != nil {
		return nil, err
	}
	metricsAddr := "0"
	if o.EnableMetrics {
		metricsAddr = net.JoinHostPort(o.MetricsListenAddress, o.MetricsPort)
	}
	cacheOpts := cache.Options{}
	if o.CacheSyncPeriod > 0 {
		cacheOpts.SyncPeriod = &o.CacheSyncPeriod
	}
	if o.WatchNamespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{o.WatchNamespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Logger:                  logr.FromSlogHandler(log.Handler()),
		Cache:                   cacheOpts,
		LeaderElection:          !o.DisableLeaderElection,
		LeaderElectionID:        "operator.dapr.io",
		LeaderElectionNamespace: namespace,
		// The lease is let go on shutdown, so a successor takes over at
		// once rather than after the lease expires.
		LeaderElectionReleaseOnCancel: true,
		HealthProbeBindAddress:        net.JoinHostPort(o.HealthzListenAddress, strconv.Itoa(o.HealthzPort)),
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
	})
	if err != nil {
		return nil, fmt.Errorf("controller manager: %w", err)
	}
	return mgr, nil
}
