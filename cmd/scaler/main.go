// Command scaler is Tandem's KEDA external scaler (package scaler): KEDA's
// externalscaler.ExternalScaler gRPC service on --port, answering per app
// ID with the load its sidecars report in their metadata API (the
// subscriptions' broker backlog or in-flight messages, invocations in
// flight, active actors).
//
// Sidecars are found by --sidecars (fixed metadata endpoints,
// self-hosted) or by --dns-template (in Kubernetes, the operator's
// headless Service "{app}-dapr.{namespace}.svc.cluster.local", each pod's
// address at --sidecar-port, the sidecars' HTTP API port by default). With
// --resources-path, an app with no sidecar running (scaled to zero) is
// measured at its broker: the pub/sub Component named by the
// ScaledObject's pubsubName is opened as the app would open it, and asked
// for the topic's backlog.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tandemrun/tandem/internal/flagvalue"
	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/scaler"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Options are the command line.
type Options struct {
	Port        int
	Listen      string
	Sidecars    []string
	DNSTemplate string
	SidecarPort int
	Poll        time.Duration
	Resources   []string
	LogLevel    string
	LogAsJSON   bool
	Version     bool
	// APIToken is DAPR_API_TOKEN, sent to the sidecars' metadata API.
	APIToken string
}

// ParseFlags reads the command line.
func ParseFlags(args []string, stderr io.Writer, getenv func(string) string) (Options, error) {
	o := Options{}
	fs := flag.NewFlagSet("scaler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Port, "port", 6000, "the gRPC port KEDA calls (ScaledObject trigger metadata scalerAddress: <service>:<port>)")
	fs.StringVar(&o.Listen, "listen-address", "", "the address to listen on (default: all)")
	fs.Var(flagvalue.NewList(&o.Sidecars), "sidecars", "metadata endpoints of the sidecars, comma-separated or repeated (http://127.0.0.1:3500); self-hosted")
	fs.StringVar(&o.DNSTemplate, "dns-template", "", `find an app's sidecars by resolving this name, {app} and {namespace} replaced (Kubernetes: "{app}-dapr.{namespace}.svc.cluster.local")`)
	fs.IntVar(&o.SidecarPort, "sidecar-port", 3500, "with --dns-template, the sidecars' port serving /v1.0/metadata (their HTTP API port; DAPR_API_TOKEN is sent when set)")
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
	if o.Version {
		return o, nil
	}
	if (len(o.Sidecars) == 0) == (o.DNSTemplate == "") {
		return o, errors.New("give the sidecars to ask either with --sidecars (self-hosted) or with --dns-template (Kubernetes), not both")
	}
	if _, err := logging.ParseLevel(o.LogLevel); err != nil {
		return o, err
	}
	if o.Port < 0 || o.Port > 65535 || o.SidecarPort <= 0 || o.SidecarPort > 65535 {
		return o, errors.New("--port and --sidecar-port must be TCP ports")
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
	finder := scaler.Static(o.Sidecars...)
	if o.DNSTemplate != "" {
		finder = scaler.DNS(o.DNSTemplate, o.SidecarPort, nil)
	}
	reader := &scaler.Reader{Finder: finder, APIToken: o.APIToken}
	so := scaler.Options{Reports: reader.Reports, Poll: o.Poll, Log: log}
	var plan task.Plan
	serving, brokerStage := plan.Stage("serve", 0), plan.Stage("brokers", 0)
	defer plan.Abort(ctx, log)
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
	return plan.Run(ctx, log)
}
