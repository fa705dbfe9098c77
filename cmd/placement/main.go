// Command placement is Tandem's actor placement service, a drop-in for
// Dapr's: it accepts Dapr placement's flags, elects a leader among its
// replicas with Raft (--id, --initial-cluster), and the leader serves
// dapr.proto.placement.v1.Placement/ReportDaprStatus to actor hosts
// (tandemd or daprd, --placement-host-address), with /healthz and
// Prometheus metrics.
//
// With --tls-enabled it gets its certificate from sentry
// (spiffe://<trust-domain>/ns/<NAMESPACE>/dapr-placement), serves hosts
// with mTLS and checks that each reports its own app ID and namespace, and
// the replicas talk Raft over mTLS, accepting only that identity.
package main

import (
	"context"
	"encoding/json"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/placement"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	sentryserver "github.com/tandemrun/tandem/sentry/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultLeaderSettle is --leader-settle-window with several replicas: a
// failover's hosts reconnect within about a second (their retry cycle).
const defaultLeaderSettle = 2 * time.Second

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
		fmt.Fprintln(stderr, "placement:", err)
		return 2
	}
	if o.Version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	level, _ := logging.ParseLevel(o.LogLevel)
	log := logging.New(stdout, level, o.LogAsJSON, "component", "placement")
	if err := serve(ctx, o, log, getenv); err != nil {
		log.Error("placement failed", "error", err)
		return 1
	}
	log.Info("placement service shut down gracefully")
	return 0
}

func serve(ctx context.Context, o *Options, log *slog.Logger, getenv func(string) string) error {
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}
	log.Info("starting Tandem placement service", "version", version, "id", o.ID, "mode", strings.ToLower(o.Mode))
	for _, f := range []string{"max-api-level", "min-api-level"} {
		if o.set[f] {
			log.Warn("flag is deprecated in Dapr and ignored, as Dapr 1.18's placement ignores it", "flag", "--"+f)
		}
	}
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		return fmt.Errorf("--trust-domain %q: %w", o.TrustDomain, err)
	}
	placeID, err := spiffeid.FromSegments(td, "ns", namespace, "dapr-placement")
	if err != nil {
		return fmt.Errorf("placement identity in namespace %q: %w", namespace, err)
	}

	var plan task.Plan
	raftStage, serving, idStage := plan.Stage("raft", 0), plan.Stage("serve", 0), plan.Stage("identity", 0)
	defer plan.Abort(ctx, log)
	var src *identity.Source
	if o.TLSEnabled {
		var idTasks []task.Task
		if src, idTasks, err = (sentryclient.ControlPlane{Kubernetes: strings.EqualFold(o.Mode, "kubernetes"), ID: placeID, TrustDomain: o.TrustDomain,
			SentryAddress: o.SentryAddress, AnchorsFile: o.TrustAnchorsFile, TokenFile: getenv("DAPR_SENTRY_TOKEN_FILE"), Log: log}).Start(ctx); err != nil {
			return err
		}
		idStage.Add(idTasks...)
		log.Info("certificate obtained from sentry", "spiffe_id", placeID.String(), "sentry_address", o.SentryAddress)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := placement.NewMetrics(reg)
	lis, err := net.Listen("tcp", net.JoinHostPort(o.ListenAddress, strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("placement API: listen: %w (choose another --port)", err)
	}
	serving.Add(task.Cleanup("placement listener", func() error { _ = lis.Close(); return nil }))
	peers := placement.ParsePeers(o.InitialCluster)
	settle := o.LeaderSettleWindow
	if settle < 0 {
		settle = 0
		if len(peers) > 1 {
			settle = defaultLeaderSettle
		}
	}
	srv := placement.New(placement.Options{
		NodeID: o.ID, Listener: lis, Source: src,
		KeepAliveTime: o.KeepAliveTime, KeepAliveTimeout: o.KeepAliveTimeout,
		ReplicationFactor: int64(o.ReplicationFactor), DisseminateTimeout: o.DisseminateTimeout,
		DisseminateCoalesceWindow: o.DisseminateCoalesceWindow, LeaderSettle: settle, Metrics: metrics, Log: log,
	})
	var raftReady atomic.Bool
	lead, err := placement.NewLeadership(placement.LeadershipOptions{
		ID: o.ID, Peers: peers, Source: src, PlacementID: placeID,
		LogStorePath: o.RaftLogStorePath, OnLeader: srv.SetLeader, OnReady: func() { raftReady.Store(true) },
		Metrics: metrics, Log: log,
	})
	if err != nil {
		return err
	}
	healthLis, err := net.Listen("tcp", net.JoinHostPort(o.HealthzListenAddress, strconv.Itoa(o.HealthzPort)))
	if err != nil {
		return fmt.Errorf("healthz: listen: %w (choose another --healthz-port)", err)
	}
	serving.Add(task.Cleanup("healthz listener", func() error { _ = healthLis.Close(); return nil }))
	raftStage.Add(task.Task{Name: "raft", Critical: true, Run: lead.Run})
	serving.Add(
		task.Task{Name: "placement API", Critical: true, Run: srv.Run},
		task.Task{Name: "healthz server", Critical: true, Run: func(ctx context.Context) error {
			return sentryserver.ServeHTTP(ctx, healthLis, healthHandler(&raftReady, srv, o.MetadataEnabled))
		}},
	)
	attrs := []any{"grpc_address", lis.Addr().String(), "healthz_address", healthLis.Addr().String(),
		"raft_peers", strings.Join(o.InitialCluster, ","), "mtls", o.TLSEnabled}
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
	log.Info("placement listening", attrs...)
	return plan.Run(ctx, log)
}

// healthHandler serves /healthz (200 once Raft runs, 503 before) and, with
// --metadata-enabled, /placement/state (the leader's tables as JSON).
func healthHandler(raftReady *atomic.Bool, srv *placement.Server, metadata bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !raftReady.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	if metadata {
		mux.HandleFunc("/placement/state", func(w http.ResponseWriter, r *http.Request) {
			tables, err := srv.StatePlacementTables(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(tables)
		})
	}
	return mux
}
