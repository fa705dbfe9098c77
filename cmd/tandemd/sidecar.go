package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tandemrun/tandem/actors/appstream"
	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/resolvers"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/mcp"
	"github.com/tandemrun/tandem/observe"
	"github.com/tandemrun/tandem/proxy"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/httpendpoints"
	"github.com/tandemrun/tandem/proxy/resilient"
	"github.com/tandemrun/tandem/proxy/wasmhost"
	"github.com/tandemrun/tandem/resiliency"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/workflow"
)

// defaultResolver is daprd's default name resolution in each mode.
var defaultResolver = map[string]string{ModeStandalone: resolvers.DefaultComponent, ModeKubernetes: resolvers.KubernetesDefault}

// resolveCacheTTL bounds how stale a resolved address list may be.
const resolveCacheTTL = 2 * time.Second

// runSidecar is tandemd's composition root: it builds every part from the
// flags and the Configuration, hands them down as values, and runs the
// long-running ones as tasks in one group until ctx ends or the sidecar is
// asked to shut down. restart asks for the sidecar to be stopped and run
// again, as a SIGHUP does (Kubernetes mode, when its Configuration
// changes).
func runSidecar(ctx context.Context, o *Options, log *slog.Logger, restart func()) error {
	for _, ig := range o.Ignored {
		log.Info("flag accepted but ignored: Tandem does not implement this feature yet", "flag", ig)
	}
	if o.AppID == "" { // before anything registers under it
		return errors.New("sidecar: --app-id is required")
	}

	// The tasks, by the order in which they stop: what takes work in and
	// drains it, then background loops, then the connections the drained
	// work used, then the components. Parts that only need closing are
	// cleanups in their stage.
	var plan task.Plan
	serve, background := plan.Stage("serve", 0), plan.Stage("background", 0)
	connections, comps := plan.Stage("connections", 0), plan.Stage("components", 0)
	defer plan.Abort(ctx, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// In Kubernetes mode the sidecar always has a certificate from sentry,
	// --enable-mtls or not, to call the operator with (as daprd); the
	// Configuration and the resources come from the operator.
	var (
		src  *identity.Source
		kube *kubeStart
		cfg  *config.Configuration
		err  error
	)
	if o.Mode == ModeKubernetes {
		var tasks []task.Task
		src, tasks, err = startIdentity(ctx, o, config.Default(), reg, log)
		if err != nil || src == nil { // src is nil if ctx ended while waiting for sentry
			return err
		}
		background.Add(tasks...)
		if kube, err = startKubernetes(ctx, o, src, log); err != nil || kube == nil {
			return err
		}
		connections.Add(task.Cleanup("operator client", kube.client.Close))
		cfg = kube.cfg
	} else if cfg, err = config.LoadFiles(os.Getenv, o.ConfigPaths...); err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	logConfiguration(cfg, log)

	if o.EnableMTLS && src == nil {
		var tasks []task.Task
		src, tasks, err = startIdentity(ctx, o, cfg, reg, log)
		if err != nil || src == nil { // src is nil if ctx ended while waiting for sentry
			return err
		}
		background.Add(tasks...)
	}
	// peers is the identity of sidecar-to-sidecar traffic: none without
	// --enable-mtls, even when there is one for the operator.
	peers := src
	if !o.EnableMTLS {
		peers = nil
		log.Warn("mTLS is disabled: sidecar-to-sidecar traffic is plaintext and callers are not authenticated; pass --enable-mtls with --sentry-address to turn it on")
	}

	if o.EnableProfiling {
		t, _, err := profilingTask(o.ListenAddresses, o.ProfilePort, log.With("component", "profiling"))
		if err != nil {
			return err
		}
		serve.Add(t)
	}

	live, err := newLiveConfig(cfg, o.AppProtocol, log)
	if err != nil {
		return err
	}
	if kube == nil { // in Kubernetes mode --config names a resource, followed below
		background.Add(task.Task{Name: "configuration reload", Run: func(ctx context.Context) error {
			return live.watch(ctx, o.ConfigPaths, reloadInterval)
		}})
	}

	obs, metrics, stopTracing, err := observability(ctx, o, cfg, reg, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if obs, err = withAPIAccess(obs, cfg.Spec.API, log); err != nil {
		return err
	}

	var rc *runtimeComponents
	if kube != nil {
		rc, err = startComponents(o, kube.set, log)
	} else {
		rc, err = loadComponents(o, log)
	}
	if err != nil {
		return err
	}
	comps.Add(task.Cleanup("components", func() error { rc.Close(); return nil })) // Close logs what fails
	background.Add(rc.fatalTask())
	// Resiliency files come from the resource folders and follow their
	// hot reload; every call looks up the policies in effect.
	resLog := log.With("component", "resiliency")
	policies := resilient.NewPolicies(o.AppID, resLog,
		resiliency.WithLogger(resLog), resiliency.WithHooks(metrics.ResiliencyHooks()))
	rc.useResiliency(policies, resLog)
	secretsAPI := api.NewSecrets(api.SecretsConfig{
		Registry: rc.secrets.Registry(), Allowed: live.secretAllowed, Log: log.With("component", "secrets"),
	})
	pubsubAPI := api.NewPubSub(api.PubSubConfig{
		Registry: rc.pubsubs.Registry(), AppID: o.AppID, Namespace: o.MetricsNamespace,
		Declarative: rc.Subscriptions, Log: log, Resiliency: policies.Set, Scopes: rc.topicScopes.Of,
		NoProgrammatic: slices.Contains(o.DisableInitEndpoints, "subscribe"),
		Metrics: api.PubSubMetrics{
			Egress: metrics.PubSubEgress, BulkEgress: metrics.PubSubBulkEgress, Ingress: metrics.PubSubIngress,
		},
	})
	// The transactional outbox of state stores that configure one: its
	// internal subscriptions run whether or not there is an app.
	outbox := api.NewOutbox(api.OutboxOptions{
		States: rc.states.Registry(), Metadata: rc.Metadata, PubSub: pubsubAPI,
		AppID: o.AppID, Namespace: o.MetricsNamespace, Log: log, // NAMESPACE as set, as daprd
	})
	background.Add(task.Task{Name: "outbox", Run: outbox.Run})
	stateAPI := api.NewState(api.StateConfig{
		Registry: rc.states.Registry(), AppID: o.AppID, Namespace: o.Namespace,
		Metadata: rc.Metadata, Log: log.With("component", "state"), Resiliency: policies.Set,
		Outbox: outbox,
	})
	bindingsAPI := api.NewBindings(api.BindingsConfig{Registry: rc.binds.Registry(), Resiliency: policies.Set, Log: log})
	lockAPI := api.NewLock(api.LockConfig{Registry: rc.locks.Registry(), AppID: o.AppID, Resiliency: policies.Set, Log: log})
	cryptoAPI := api.NewCrypto(api.CryptoConfig{Registry: rc.cryptos.Registry(), Resiliency: policies.Set, Log: log})
	conversationAPI := api.NewConversation(api.ConversationConfig{Registry: rc.convos.Registry(), Resiliency: policies.Set, Log: log})
	configAPI := api.NewConfiguration(api.ConfigurationConfig{Registry: rc.configs.Registry(), Resiliency: policies.Set, Log: log})
	// HTTP subscriptions end before the components close.
	connections.Add(task.Cleanup("configuration subscriptions", func() error { configAPI.Close(); return nil }))
	rc.setOnChange(func() { pubsubAPI.Reload(); bindingsAPI.Reload() }, pubsubAPI.Settled)
	switch {
	case kube != nil && cfg.FeatureEnabled("HotReload"):
		background.Add(kube.resources.tasks(o, rc, kube.configSpec, restart)...)
	case kube != nil:
		log.Info("hot reload is disabled by the HotReload feature; resources are read from the operator at start-up only")
	default:
		if t, ok := resourcesWatch(cfg, rc, o, log); ok {
			background.Add(t)
		}
	}

	// The listeners come first: name resolution registers the ports they
	// are bound to.
	lns, err := proxy.Listen(proxy.ListenConfig{
		Addresses: o.ListenAddresses, HTTPPort: o.HTTPPort, GRPCPort: o.GRPCPort,
		InternalAddress: o.InternalGRPCListenAddress, InternalPort: o.InternalGRPCPort,
		MetricsAddress: o.MetricsListenAddress, MetricsPort: metricsPort(o),
		PublicAddress: o.PublicListenAddress, PublicPort: o.PublicPort,
	})
	if err != nil {
		return err
	}
	// The sidecar closes them when it stops; this is for a failed start.
	connections.Add(task.Cleanup("listeners", func() error { lns.Close(); return nil }))
	// The Configuration's middleware pipelines, over the middleware
	// components; both follow hot reloads of either.
	pipes := newPipelines(live.cfg.Load(), rc.middlewares.Registry(), log)
	live.pipes = &rc.pipes
	rc.pipes.set(pipes)
	wasmApp, err := loadWasmApp(ctx, o, log)
	if err != nil {
		return err
	}
	appCfg := proxy.AppConfig{
		Port: o.AppPort, Protocol: o.AppProtocol, ChannelAddress: o.AppChannelAddress, APIToken: o.AppAPIToken,
		MaxRequestBodySize: int64(o.MaxRequestBodySize), ReadBufferSize: o.ReadBufferSize, Pipeline: pipes.app,
	}
	if wasmApp != nil {
		appCfg.InProcess = wasmApp
		// Closed after the sidecar has stopped calling it.
		connections.Add(task.Cleanup("wasm app", wasmApp.Close))
	}
	app, err := proxy.NewApp(appCfg)
	if err != nil {
		return err
	}
	connections.Add(task.Cleanup("app channel", app.Close))
	if o.AppHealth.Enabled {
		// Before app.Channel is handed out: calls to an unhealthy app fail.
		// Before the transport is wrapped: probes are not calls to the app
		// (no dapr_http_client_* metrics, no spans), as in daprd.
		hc := proxy.AppHealthCheck{Path: o.AppHealth.Path, Interval: o.AppHealth.Interval, Timeout: o.AppHealth.Timeout, Threshold: o.AppHealth.Threshold}
		if health := app.CheckHealth(hc, log); health != nil {
			background.Add(task.Task{Name: "app health probes", Run: health.Run})
		}
	}
	if app.HTTP != nil && obs.AppHTTPTransport != nil {
		app.HTTP.WrapTransport(obs.AppHTTPTransport, obs.AppHTTPCall)
	}

	host := o.HostIP
	if host == "" {
		host = "127.0.0.1"
	}
	resolver, heartbeat, component, err := nameResolution(cfg.Spec.NameResolution, defaultResolver[o.Mode], resolve.Instance{
		AppID: o.AppID, Namespace: o.Namespace, Address: host,
		InternalPort: lns.InternalPort(), HTTPPort: lns.HTTPPort(), AppPort: o.AppPort,
	}, src, metrics, log, resLog)
	if err != nil {
		return err
	}
	if heartbeat != nil {
		background.Add(task.Task{Name: "name resolution " + component, Critical: true, Run: heartbeat.Run})
	}
	// Deregistering comes after the servers have drained, as before.
	connections.Add(task.Cleanup("name resolution", resolver.Close))
	pool := transport.NewPool(transport.Options{
		Source: peers, MaxMessageSize: proxy.MessageSize(int64(o.MaxRequestBodySize)), DialOptions: obs.DialOptions, Log: log,
		Lean: o.LeanTransport,
	})
	connections.Add(task.Cleanup("connection pool", pool.Close))
	client, err := invoke.NewClient(invoke.ClientOptions{
		Resolver: resolver, Pool: pool, AppID: o.AppID, Namespace: o.Namespace, Local: app.Channel(),
		LeanHook: obs.LeanClient, Log: log,
	})
	if err != nil {
		return err
	}
	endpoints, err := httpendpoints.New(httpendpoints.Options{
		Next: client, Resolve: rc.env.ResolveHTTPEndpoint, WrapTransport: obs.AppHTTPTransport,
		Sent: metrics.InvokeSent, Log: log.With("component", "httpendpoints"),
	})
	if err != nil {
		return err
	}
	connections.Add(task.Cleanup("http endpoints", endpoints.Close))
	rc.useEndpoints(endpoints)
	// Policies for targets.apps.<name> apply to HTTP endpoints too, as in
	// daprd: the resilient invoker wraps the endpoints' router.
	invoker := resilient.NewInvoker(resilient.InvokerOptions{Next: endpoints, Policies: policies.Set, Resolver: resolver, Log: resLog})
	wfLimits, wfLimitedRuns := workflowClusterLimits(o.Namespace, o.AppID, cfg.Spec.Workflow)
	sched, err := schedulerConnection(o, src, wfLimits, log)
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	// Stops after the servers: API calls in flight may still use it.
	background.Add(task.Task{Name: "scheduler", Run: sched.Run})
	jobsAPI := api.NewJobs(api.JobsConfig{
		Scheduler: sched, AppID: o.AppID, Namespace: o.Namespace, Log: log,
		Metrics: api.JobsMetrics{
			Success: func(d time.Duration) { metrics.JobTriggered(true, d) },
			Failure: func(d time.Duration) { metrics.JobTriggered(false, d) },
		},
	})
	// An app that speaks gRPC, or has no port, hosts actors over the
	// callback stream it opens (SubscribeActorEventsAlpha1), as in daprd.
	actorApp, actorStreams := app.Channel(), (*appstream.Streams)(nil)
	if actorApp == nil || app.GRPC != nil {
		actorStreams = appstream.New()
		actorApp = actorStreams
	}
	actorsRT, err := actorRuntime(o, src, host, lns.InternalPort(), pool, actorApp, rc, policies.Set, sched, metrics, log)
	if err != nil {
		return fmt.Errorf("actors: %w", err)
	}
	var workflows *workflow.Engine
	wfSigner, err := workflowSigner(cfg, peers)
	if err != nil {
		return err
	}
	// The MCPServer resources' workflows run inside the sidecar.
	mcpLog := log.With("component", "mcpserver")
	mcpExec := mcp.NewExecutor(mcpLog)
	if actorsRT != nil {
		// Stops before the connections its calls use.
		background.Add(task.Task{Name: "actors", Run: actorsRT.Run})
		retention, err := workflowRetention(cfg.Spec.Workflow.StateRetentionPolicy)
		if err != nil {
			return err
		}
		wfPolicies := &workflowPolicies{rc: rc, appID: o.AppID}
		workflows = workflow.New(workflow.Config{AppID: o.AppID, Namespace: o.Namespace, Actors: actorsRT, SchedulerReminders: sched.Enabled(),
			MaxMessageSize: o.MaxRequestBodySize, Retention: retention, InProcess: mcpExec, AccessPolicy: wfPolicies.current, ACLDecided: metrics.WorkflowACL,
			Signer: wfSigner, AttestationMetrics: metrics, Metrics: metrics,
			MaxConcurrentWorkflows:  int(cfg.Spec.Workflow.MaxConcurrentWorkflowInvocations),
			MaxConcurrentActivities: int(cfg.Spec.Workflow.MaxConcurrentActivityInvocations),
			ClusterLimits:           wfLimitedRuns,
			Tracer:                  obs.WorkflowTracer,
			Log:                     log.With("component", "workflow")})
		background.Add(task.Task{Name: "workflow access policies", Run: wfPolicies.Run})
		background.Add(task.Task{Name: "workflow engine", Run: workflows.Run})
	}
	// MCPServers load once the sidecar serves (the health endpoints wait
	// for them); one that cannot load and does not ignore errors stops
	// the sidecar, as daprd exits.
	mcpServers := newMCPServers(o, rc, mcpExec, workflows, src, mcpLog)
	rc.useMCP(mcpServers)
	background.Add(task.Task{Name: "mcp servers", Critical: true, Run: mcpServers.Run})

	s, err := proxy.New(proxy.Options{
		Self: proxy.Self{AppID: o.AppID, Namespace: o.Namespace, RuntimeVersion: runtimeVersion(version), HostIP: o.HostIP,
			EnabledFeatures: cfg.EnabledFeatures()},
		Listeners: lns, App: app,
		Invocation: proxy.Invocation{Invoker: invoker, Resolver: resolver, Pool: pool, Access: live, External: endpoints.External,
			ProxyPolicy: func(appID string) *resiliency.Policy { return policies.Set().ForApp(appID) }},
		APIs: proxy.APIs{
			Token: o.APIToken, AllowedOrigins: o.AllowedOrigins, MaxRequestBodySize: int64(o.MaxRequestBodySize), ReadBufferSize: o.ReadBufferSize,
			State: stateAPI, Secrets: secretsAPI, PubSub: pubsubAPI, Bindings: bindingsAPI, Lock: lockAPI, Crypto: cryptoAPI, Conversation: conversationAPI, Configuration: configAPI, Actors: actorsRT, ActorStreams: actorStreams, Jobs: jobsAPI, Workflows: workflows, Components: rc,
			Resiliencies:  func() []string { return policies.Set().Loaded() },
			HTTPEndpoints: endpoints.Names,
			MCPServers:    mcpServers.Names, ResourcesReady: mcpServers.Ready,
			Pipeline: pipes.server.Wrap,
		},
		Interceptors: proxy.Interceptors{HTTP: obs.HTTPMiddleware, GRPC: obs.GRPCServerOptions, Internal: obs.InternalServerOptions, Lean: obs.LeanServer},
		Identity:     peers, Metrics: reg, BlockShutdown: o.BlockShutdown, GracefulShutdown: o.GracefulShutdown,
		SkipAppConfig: slices.Contains(o.DisableInitEndpoints, "config"), Log: log,
	})
	if err != nil {
		return err
	}
	if wasmApp != nil {
		wasmApp.UseAPI(s.APIHandler())
	}
	if metrics != nil {
		// The load report KEDA's scaler also reads (tandem_* gauges).
		if err := reg.Register(observe.NewLoadCollector(s.Load)); err != nil {
			return fmt.Errorf("register the load metrics: %w", err)
		}
	}
	log.Info("name resolution", "component", component)
	// A forced or cut-off shutdown (proxy.ErrForcedShutdown,
	// proxy.ErrGraceExceeded) makes tandemd exit 1 even when the stop began
	// with a signal, which the task group only logs.
	var sidecarErr error
	serve.Add(task.Task{Name: "sidecar", Critical: true, Run: func(ctx context.Context) error {
		sidecarErr = s.Run(ctx)
		return sidecarErr
	}})
	if err := plan.Run(ctx, log); err != nil {
		return err
	}
	if err := rc.Failure(); err != nil {
		// A component that stops the sidecar makes it exit 1, as daprd,
		// even when a signal began the shutdown before the components
		// task took the error.
		return fmt.Errorf("components: %w", err)
	}
	return sidecarErr
}

// loadWasmApp loads --app-wasm; nil without it. A module that cannot serve
// stops the sidecar at start, naming what is wrong.
func loadWasmApp(ctx context.Context, o *Options, log *slog.Logger) (*wasmhost.App, error) {
	if o.AppWasm.Path == "" {
		return nil, nil
	}
	return wasmhost.Load(ctx, wasmhost.Config{
		Path: o.AppWasm.Path, MemoryMiB: o.AppWasm.MemoryMiB, Timeout: o.AppWasm.Timeout, MaxInstances: o.AppWasm.MaxInstances,
		CacheDir: o.AppWasm.CacheDir, APIToken: o.APIToken, Log: log.With("app_id", o.AppID),
	})
}

// nameResolution builds the Configuration's name resolution component
// (fallback, the mode's default, when it names none) for self, behind a short cache and outlier ejection:
// failing instances are taken out of rotation, learning from the resilient
// invoker which instance served each call. The component's background work
// (a registry heartbeat, the xDS stream), if it has any, is returned to be
// run as a task. ident is the sidecar's SVID (nil without one), with which
// the xds component authenticates to the xDS server.
func nameResolution(nr config.NameResolution, fallback string, self resolve.Instance, ident *identity.Source, metrics *observe.Metrics, log, resLog *slog.Logger) (*resilient.Resolver, resolve.Runner, string, error) {
	component := nr.Component
	if component == "" {
		component = fallback
	}
	nrConfig, _ := nr.Configuration.(map[string]any)
	r, err := resolvers.New(component, resolve.Config{Self: self, Configuration: nrConfig, Identity: ident, Log: log.With("component", "nameresolution")})
	if err != nil {
		return nil, nil, "", fmt.Errorf("name resolution: %w", err)
	}
	onEject, onReturn := metrics.EjectorHooks()
	ejection := resiliency.EjectorConfig{
		OnEject: func(addr string, d time.Duration) {
			resLog.Warn("instance keeps failing; taken out of rotation", "address", addr, "for", d.String())
			if onEject != nil {
				onEject(addr, d)
			}
		},
		OnReturn: func(addr string) {
			resLog.Info("instance back in rotation", "address", addr)
			if onReturn != nil {
				onReturn(addr)
			}
		},
	}
	run, _ := r.(resolve.Runner)
	return resilient.NewResolver(resolve.NewCached(r, resolveCacheTTL), resilient.ResolverOptions{Ejection: ejection}), run, component, nil
}

func metricsPort(o *Options) int {
	if !o.MetricsEnabled {
		return -1
	}
	return o.MetricsPort
}

// startIdentity obtains the first SVID from sentry (retrying until it
// answers or ctx ends) and returns the tasks that keep it renewed and, with
// --trust-anchors-file, the anchors in step with the file. The source is
// nil when ctx ended first.
func startIdentity(ctx context.Context, o *Options, cfg *config.Configuration, reg *prometheus.Registry, log *slog.Logger) (*identity.Source, []task.Task, error) {
	anchorsPEM := o.TrustAnchors
	if len(anchorsPEM) == 0 && o.TrustAnchorsFile != "" {
		b, err := os.ReadFile(o.TrustAnchorsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read trust anchors file: %w", err)
		}
		anchorsPEM = b
	}
	anchors, err := sentryclient.ParseTrustAnchors(anchorsPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("trust anchors (DAPR_TRUST_ANCHORS or --trust-anchors-file): %w", err)
	}
	sentryID, err := sentryclient.SentryID(o.ControlPlaneTrustDomain, o.ControlPlaneNamespace)
	if err != nil {
		return nil, nil, err
	}
	token := o.SentryToken
	if token == "" && o.SentryTokenFile != "" {
		b, err := os.ReadFile(o.SentryTokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read sentry token file: %w", err)
		}
		token = string(trimSpace(b))
	}
	// The anchors live in src from the start, so that sentry is verified
	// against the current ones after a root rotation.
	src := identity.NewSource()
	src.SetTrustAnchors(anchors)
	validator := sentryv1.SignCertificateRequest_UNKNOWN
	if o.Mode == ModeKubernetes {
		token, validator = kubeSentryToken(token, log)
	}
	client, err := sentryclient.New(sentryclient.Config{Address: o.SentryAddress, CurrentTrustAnchors: src.TrustAnchors,
		SentryID: sentryID, Token: token, TokenValidator: validator, JWTAudiences: o.SentryJWTAudiences})
	if err != nil {
		return nil, nil, err
	}
	var issuer identity.Issuer = client
	var tasks []task.Task
	if len(o.TrustAnchors) == 0 && o.TrustAnchorsFile != "" {
		// The watched file alone decides the anchors (as in Dapr);
		// without it they follow sentry's responses. The file is watched
		// from now on, while the first certificate is awaited too.
		issuer = identity.AnchorsFromFileOnly(client)
		tasks = append(tasks, task.Early(ctx, task.Task{Name: "trust anchors file watch", Critical: true, Run: func(ctx context.Context) error {
			return identity.WatchTrustAnchorsFile(ctx, o.TrustAnchorsFile, src, 0, log.With("component", "identity"), nil)
		}}))
	}
	// stopEarly stops the watcher when start-up does not get further.
	stopEarly := func() {
		stopped, cancel := context.WithCancel(ctx)
		cancel()
		for _, t := range tasks {
			_ = t.Run(stopped)
		}
		_ = client.Close()
	}
	appID := o.AppID
	if o.SentryLocalIdentity != "" {
		appID = o.SentryLocalIdentity
	}
	id, err := identity.AppID(cfg.TrustDomain(), o.Namespace, appID)
	if err != nil {
		stopEarly()
		return nil, nil, err
	}
	rotated := prometheus.NewCounter(prometheus.CounterOpts{Name: "dapr_runtime_mtls_workload_cert_rotated_total", Help: "Successful workload certificate issuances."})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "dapr_runtime_mtls_workload_cert_rotated_fail_total", Help: "Failed workload certificate issuances."})
	expiry := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_workload_cert_expiry_timestamp_seconds", Help: "Expiry of the current workload certificate (Unix seconds)."})
	reg.MustRegister(rotated, failed, expiry,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_workload_cert_expiry_seconds", Help: "Seconds until the current workload certificate expires."}, func() float64 {
			if svid, err := src.GetX509SVID(); err == nil {
				return time.Until(svid.Certificates[0].NotAfter).Seconds()
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_trust_anchors_expiry_seconds", Help: "Seconds until the first of the trust anchors expires."}, func() float64 {
			if t := identity.EarliestExpiry(src.TrustAnchors()); !t.IsZero() {
				return time.Until(t).Seconds()
			}
			return 0
		}))

	rot := &identity.Rotator{
		ID: id, Issuer: issuer, Source: src, Log: log.With("component", "identity"),
		OnRotate: func(s *x509svid.SVID) {
			rotated.Inc()
			expiry.Set(float64(s.Certificates[0].NotAfter.Unix()))
		},
		OnFailure: func(error) { failed.Inc() },
	}
	next, err := firstSVID(ctx, rot, o.SentryAddress, log)
	if err != nil || ctx.Err() != nil {
		stopEarly()
		return nil, nil, err
	}
	svid, _ := src.GetX509SVID()
	log.Info("workload certificate issued", "spiffe_id", id.String(),
		"serial", svid.Certificates[0].SerialNumber.String(),
		"not_after", svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
	tasks = append(tasks, task.Task{Name: "certificate rotation", Critical: true, Run: func(ctx context.Context) error {
		err := rot.Run(ctx, next)
		if cerr := client.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close sentry client: %w", cerr)
		}
		return err
	}})
	return src, tasks, nil
}

func firstSVID(ctx context.Context, rot *identity.Rotator, addr string, log *slog.Logger) (time.Time, error) {
	wait := 500 * time.Millisecond
	for {
		next, err := rot.Renew(ctx)
		if err == nil {
			return next, nil
		}
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		log.Warn("cannot get a workload certificate from sentry yet; retrying (is sentry running at --sentry-address?)",
			"sentry_address", addr, "retry_in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			return time.Time{}, nil
		case <-time.After(wait):
		}
		if wait < 5*time.Second {
			wait *= 2
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// logConfiguration logs the configuration in effect (debug level), as
// daprd does, so a SIGHUP reload can be checked in the log.
func logConfiguration(cfg *config.Configuration, log *slog.Logger) {
	spec, err := cfg.SpecJSON()
	if err != nil {
		log.Debug("configuration loaded", "source", cfg.Source, "error", err)
		return
	}
	log.Debug("configuration loaded", "source", cfg.Source, "spec", spec)
}

// workflowRetention is the workflow engine's retention policy from the
// Configuration's spec.workflow.stateRetentionPolicy (nil: none).
func workflowRetention(p *config.StateRetentionPolicy) (*workflow.RetentionPolicy, error) {
	if p == nil {
		return nil, nil
	}
	var out workflow.RetentionPolicy
	for _, f := range []struct {
		key string
		in  *config.Duration
		out **time.Duration
	}{{"anyTerminal", p.AnyTerminal, &out.AnyTerminal}, {"completed", p.Completed, &out.Completed}, {"failed", p.Failed, &out.Failed}, {"terminated", p.Terminated, &out.Terminated}} {
		d, err := f.in.ParseSet()
		if err != nil {
			return nil, fmt.Errorf("spec.workflow.stateRetentionPolicy.%s: %w", f.key, err)
		}
		*f.out = d
	}
	return &out, nil
}
