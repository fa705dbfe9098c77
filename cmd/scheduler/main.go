// Command scheduler is Tandem's scheduler service, a drop-in for Dapr's: it
// accepts Dapr scheduler's flags, keeps jobs in an embedded etcd (or an
// external one, --etcd-embed=false), and serves
// dapr.proto.scheduler.v1.Scheduler to sidecars (tandemd or daprd,
// --scheduler-host-address), with /healthz and Prometheus metrics.
//
// Replicas (--etcd-initial-cluster) form one etcd cluster and share the
// jobs between them; each tick is delivered once, to one of the connected
// sidecars of the job's app.
//
// With --tls-enabled it gets its certificate from sentry
// (spiffe://<trust-domain>/ns/<NAMESPACE>/dapr-scheduler), serves sidecars
// with mTLS and lets each touch only its own app's jobs.
package main

import (
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/scheduler/engine"
	"github.com/tandemrun/tandem/scheduler/pool"
	"github.com/tandemrun/tandem/scheduler/server"
	"github.com/tandemrun/tandem/scheduler/store"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	sentryserver "github.com/tandemrun/tandem/sentry/server"

	"github.com/tandemrun/tandem/internal/rawio"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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
	if err != nil && o == nil {
		fmt.Fprintln(stderr, "scheduler:", err)
		return 2
	}
	if err != nil {
		// Dapr's scheduler logs refused options on its log (stdout) and
		// exits 1.
		logging.New(stdout, slog.LevelInfo, false, "component", "scheduler").Error(err.Error())
		return 1
	}
	if o.Version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	level, _ := logging.ParseLevel(o.LogLevel)
	log := logging.New(stdout, level, o.LogAsJSON, "component", "scheduler")
	if err := serve(ctx, o, log, stderr, getenv); err != nil {
		log.Error("scheduler failed", "error", err)
		return 1
	}
	log.Info("scheduler service shut down gracefully")
	return 0
}

func serve(ctx context.Context, o *Options, log *slog.Logger, stderr io.Writer, getenv func(string) string) error {
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}
	kube := strings.EqualFold(o.Mode, "kubernetes")
	log.Info("starting Tandem scheduler service", "version", version, "id", o.ID, "mode", strings.ToLower(o.Mode))
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		return fmt.Errorf("--trust-domain %q: %w", o.TrustDomain, err)
	}
	schedID, err := spiffeid.FromSegments(td, "ns", namespace, "dapr-scheduler")
	if err != nil {
		return fmt.Errorf("scheduler identity in namespace %q: %w", namespace, err)
	}

	var plan task.Plan
	engineStage, serving, storeStage, idStage := plan.Stage("engine", 0), plan.Stage("serve", 0), plan.Stage("store", 0), plan.Stage("identity", 0)
	defer plan.Abort(ctx, log)

	var src *identity.Source
	if o.TLSEnabled {
		var idTasks []task.Task
		if src, idTasks, err = (sentryclient.ControlPlane{Kubernetes: kube, ID: schedID, TrustDomain: o.TrustDomain,
			SentryAddress: o.SentryAddress, AnchorsFile: o.TrustAnchorsFile, TokenFile: getenv("DAPR_SENTRY_TOKEN_FILE"), Log: log}).Start(ctx); err != nil {
			return err
		}
		idStage.Add(idTasks...)
		log.Info("certificate obtained from sentry", "spiffe_id", schedID.String(), "sentry_address", o.SentryAddress)
	}

	// Listen first, so that a port in use fails before etcd starts.
	lis, err := net.Listen("tcp", net.JoinHostPort(o.ListenAddress, strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("scheduler API: listen: %w (choose another --port)", err)
	}
	serving.Add(task.Cleanup("scheduler listener", func() error { _ = lis.Close(); return nil }))
	healthLis, err := net.Listen("tcp", net.JoinHostPort(o.HealthzListenAddress, strconv.Itoa(o.HealthzPort)))
	if err != nil {
		return fmt.Errorf("healthz: listen: %w (choose another --healthz-port)", err)
	}
	serving.Add(task.Cleanup("healthz listener", func() error { _ = healthLis.Close(); return nil }))

	endpoints := o.EtcdClientEndpoints
	var cli *clientv3.Client
	if o.EtcdEmbed {
		e, err := store.StartEtcd(ctx, store.EtcdOptions{
			Name: o.ID, InitialCluster: o.EtcdInitialCluster, DataDir: o.EtcdDataDir, Kubernetes: kube, Namespace: namespace,
			ClientListenAddress: o.EtcdClientListenAddress, ClientPort: o.EtcdClientPort, SpaceQuota: o.EtcdSpaceQuota,
			CompactionMode: o.EtcdCompactionMode, CompactionRetention: o.EtcdCompactionRetention,
			SnapshotCount: o.EtcdSnapshotCount, MaxSnapshots: o.EtcdMaxSnapshots, MaxWALs: o.EtcdMaxWALs,
			BackendBatchLimit: o.EtcdBackendBatchLimit, BackendBatchInterval: o.EtcdBackendBatchInterval,
			MaxTxnOps: o.EtcdMaxTxnOps, DefragThresholdMB: o.EtcdDefragThresholdMB,
			ElectionTickAdvance: o.EtcdElectionTickAdvance, Metrics: o.EtcdMetrics, LogLevel: etcdLogLevel(o.LogLevel),
		})
		if err != nil {
			return err
		}
		storeStage.Add(task.Task{Name: "embedded etcd", Critical: true, Run: e.Run})
		endpoints = []string{e.Endpoint()}
		if o.EtcdClientUsername == "" {
			// The engine's own client calls the server in process; the
			// client port still serves other clients (etcdctl, tools).
			cli = e.LocalClient()
		}
	}
	if cli == nil {
		var err error
		cli, err = store.NewClient(store.ClientOptions{Endpoints: endpoints, Username: o.EtcdClientUsername, Password: o.EtcdClientPassword})
		if err != nil {
			return err
		}
	}
	storeStage.Add(task.Cleanup("etcd client", cli.Close))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := server.NewMetrics(reg)
	p := pool.New(log, pool.Hooks{
		Connected: func(d int) { metrics.SidecarsConnected.Add(float64(d)) }, Undelivered: metrics.Undelivered,
		SendError: metrics.SidecarSendError, RecvError: metrics.SidecarRecvError,
	})
	eng := engine.New(engine.Options{
		Client: cli, ID: o.ID, Address: broadcastAddress(o), Pool: p, Workers: int(o.Workers), Log: log,
		Hooks: engine.Hooks{
			Triggered: metrics.Triggered, Failed: metrics.Failed, Replicas: p.SetReplicas,
		},
	})
	engineStage.Add(task.Task{Name: "engine", Critical: true, Run: eng.Run})
	// Dapr's scheduler (its cron library) announces its delivery workers
	// in a JSON line on stderr, which tools and Dapr's tests look for.
	slog.New(slog.NewJSONHandler(stderr, nil)).Info("Starting queue with workers", "id", o.ID, "count", o.Workers)

	var authorize func(ctx context.Context, ns, appID string) error
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(1<<31 - 1), grpc.MaxSendMsgSize(1<<31 - 1),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
	if src != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(identity.ServerTLS(src, tlsconfig.AuthorizeAny()))))
		authorize = authorizePeer
	}
	srv := server.New(server.Options{Client: cli, Pool: p, Hosts: eng, Claims: eng, Authorize: authorize, Metrics: metrics, Log: log})
	if kube {
		// A deleted namespace takes its jobs and reminders with it.
		if cs, err := namespaceClient(o.Kubeconfig); err != nil {
			log.Warn("jobs of deleted namespaces are kept: no Kubernetes client", "error", err)
		} else {
			serving.Add(task.Task{Name: "namespace watch", Run: func(ctx context.Context) error {
				return watchNamespaces(ctx, cs, srv.DeleteNamespace, log)
			}})
		}
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	serving.Add(task.Task{Name: "scheduler API", Critical: true, Run: func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- g.Serve(rawio.Listen(lis)) }()
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
		}
		srv.Close()
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			g.Stop()
		}
		return nil
	}})
	serving.Add(task.Task{Name: "healthz server", Critical: true, Run: func(ctx context.Context) error {
		return sentryserver.ServeHTTP(ctx, healthLis, healthHandler(eng))
	}})
	attrs := []any{"grpc_address", lis.Addr().String(), "healthz_address", healthLis.Addr().String(),
		"etcd", strings.Join(endpoints, ","), "broadcast_address", broadcastAddress(o), "mtls", o.TLSEnabled}
	if o.EnableMetrics {
		metricsLis, err := net.Listen("tcp", net.JoinHostPort(o.MetricsListenAddress, o.MetricsPort))
		if err != nil {
			return fmt.Errorf("metrics: listen: %w (choose another --metrics-port or --enable-metrics=false)", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) // Dapr serves metrics on every path
		serving.Add(task.Task{Name: "metrics server", Critical: true, Run: func(ctx context.Context) error {
			return sentryserver.ServeHTTP(ctx, metricsLis, mux)
		}})
		attrs = append(attrs, "metrics_address", metricsLis.Addr().String())
	}
	log.Info("scheduler listening", attrs...)
	return plan.Run(ctx, log)
}

// etcdLogLevel keeps etcd quieter than the scheduler: its info logs are
// many.
func etcdLogLevel(l string) string {
	if strings.EqualFold(l, "debug") {
		return "info"
	}
	return "warn"
}

// broadcastAddress is where sidecars are told to reach this replica
// (WatchHosts), as Dapr computes it.
func broadcastAddress(o *Options) string {
	if o.OverrideBroadcastHost != "" {
		return o.OverrideBroadcastHost
	}
	port := strconv.Itoa(o.Port)
	switch o.ListenAddress {
	case "localhost", "127.0.0.1", "::1", "[::1]":
		return net.JoinHostPort(o.ListenAddress, port)
	}
	if ip := os.Getenv("DAPR_HOST_IP"); ip != "" {
		return net.JoinHostPort(ip, port)
	}
	if conn, err := net.Dial("udp", "8.8.8.8:80"); err == nil {
		defer conn.Close()
		return net.JoinHostPort(conn.LocalAddr().(*net.UDPAddr).IP.String(), port)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// healthHandler serves /healthz: 200 once this replica holds its
// leadership key and follows the store, 503 before.
func healthHandler(eng *engine.Engine) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !eng.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

// authorizePeer checks, as Dapr's scheduler does, that the caller's
// certificate is of the app ID and namespace the request names.
func authorizePeer(ctx context.Context, ns, appID string) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "failed to get identity from context")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return status.Error(codes.Unauthenticated, "failed to get identity from context")
	}
	id, err := identity.PeerID(info.State)
	if err != nil {
		return status.Error(codes.Unauthenticated, "failed to get identity from context")
	}
	app, err := identity.ParseApp(id)
	if err != nil || app.Namespace != ns || app.AppID != appID {
		return status.Error(codes.PermissionDenied, "identity does not match request")
	}
	return nil
}
