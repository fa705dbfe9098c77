package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/appstream"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/grpcproxy"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/grpcapi"
	"github.com/tandemrun/tandem/proxy/h1server"
	"github.com/tandemrun/tandem/proxy/headers"
	"github.com/tandemrun/tandem/proxy/httpapi"
	"github.com/tandemrun/tandem/resiliency"
	"github.com/tandemrun/tandem/workflow"
)

// Options are the parts a Sidecar serves with. The binary's root builds
// them (and closes them after Run returns); the Sidecar builds only its
// servers and their handlers.
type Options struct {
	Self Self
	// Listeners are served, and closed when the Sidecar stops.
	Listeners *Listeners
	// App is the channel to this sidecar's app (NewApp); nil: no app.
	App        *App
	Invocation Invocation
	APIs       APIs
	// Interceptors are added to the servers (observability, API access).
	Interceptors Interceptors
	// Identity is this sidecar's SVID source for the internal server's
	// mTLS; nil serves it in plaintext.
	Identity *identity.Source
	// Metrics is served on Listeners.Metrics at /metrics.
	Metrics *prometheus.Registry
	// BlockShutdown, if set, keeps the APIs serving after Run's context
	// ends (a terminate signal) for this long or until the app reports
	// unhealthy, with subscriptions stopped (--dapr-block-shutdown-duration).
	BlockShutdown *time.Duration
	// GracefulShutdown bounds each step of a shutdown (5s if 0).
	GracefulShutdown time.Duration
	// SkipAppConfig leaves out the start-up GET /dapr/config
	// (--disable-init-endpoints config).
	SkipAppConfig bool
	Log           *slog.Logger
}

// Self is who this sidecar is.
type Self struct {
	AppID     string
	Namespace string // identity.DefaultNamespace if empty
	// RuntimeVersion is reported by the metadata API.
	RuntimeVersion string
	// HostIP is the address other sidecars dial; it goes into the
	// forwarding headers of calls to other apps.
	HostIP string
	// EnabledFeatures are the Configuration's preview features that are
	// on, reported by the metadata API.
	EnabledFeatures []string
}

// Invocation is service invocation, built by the binary's root.
type Invocation struct {
	// Invoker makes the HTTP and gRPC APIs' calls (an invoke.Client,
	// usually wrapped in resiliency policies).
	Invoker invoke.Invoker
	// Resolver and Pool are those of the Invoker, for proxied gRPC calls.
	Resolver resolve.Resolver
	Pool     *transport.Pool
	// ProxyPolicy, if set, returns the resiliency policy for gRPC calls the
	// app proxies to appID (dapr-app-id metadata); nil: none.
	ProxyPolicy func(appID string) *resiliency.Policy
	// Access, if set, decides whether a caller may invoke a method of this
	// app; a denied call never reaches the app.
	Access Access
	// External, if set, reports whether a target is a service outside
	// Dapr (an HTTP endpoint or a URL); see httpapi.Config.External.
	External func(target string) bool
}

// Access is access control for calls from other sidecars.
type Access interface {
	// Authorize decides a service invocation.
	Authorize(ctx context.Context, caller identity.App, req *invoke.Request) error
	// AuthorizeGRPC decides a proxied gRPC call of a full method name.
	AuthorizeGRPC(ctx context.Context, caller identity.App, method string) error
}

// APIs are the Dapr APIs served to the app, and their limits.
type APIs struct {
	// Token is DAPR_API_TOKEN: when set, requests must carry it.
	Token string
	// AllowedOrigins is --allowed-origins: CORS on the HTTP API (see
	// httpapi.CORS); empty: none.
	AllowedOrigins     string
	MaxRequestBodySize int64 // bytes; 0 = unlimited
	ReadBufferSize     int   // bytes; 0 = default
	// State, Secrets and PubSub are the building-block APIs (nil: not
	// served). PubSub.Run is started once the app is reachable.
	State   *api.State
	Secrets *api.Secrets
	PubSub  *api.PubSub
	// Bindings is the bindings API (nil: not served); its input bindings
	// run once the app is reachable, and stop with the subscriptions.
	Bindings *api.Bindings
	// Lock is the distributed lock API (nil: not served).
	Lock *api.Lock
	// Crypto is the cryptography API (nil: not served).
	Crypto *api.Crypto
	// Conversation is the conversation API (nil: not served).
	Conversation *api.Conversation
	// Configuration is the configuration API (nil: not served); its HTTP
	// subscriptions post to the app.
	Configuration *api.Configuration
	// Actors is the actor runtime (nil: no placement configured; the actor
	// API answers ERR_ACTOR_NO_PLACEMENT).
	Actors *actors.Runtime
	// ActorStreams, if set, serves the actor callback streams of an app
	// that speaks gRPC or has no port (SubscribeActorEventsAlpha1).
	ActorStreams *appstream.Streams
	// Jobs is the jobs API over the scheduler (nil: not served); the app
	// takes its triggered jobs while it is reachable and healthy.
	Jobs *api.Jobs
	// Workflows is the workflow engine (nil: no actor runtime); its
	// durabletask service is served on the gRPC API port.
	Workflows *workflow.Engine
	// Components, if set, reports loaded components to the metadata API.
	Components Components
	// Resiliencies, if set, names the Resiliency resources in effect for
	// the metadata API.
	Resiliencies func() []string
	// HTTPEndpoints, if set, names the HTTPEndpoint resources in effect
	// for the metadata API.
	HTTPEndpoints func() []string
	// MCPServers, if set, names the MCPServer resources loaded for the
	// metadata API.
	MCPServers func() []string
	// ResourcesReady, if set, reports whether the resources loaded after
	// start-up (MCPServers, which connect to their servers) are in
	// effect; the health and outbound health endpoints wait for it, as
	// daprd's do.
	ResourcesReady func() bool
	// Pipeline, if set, is the Configuration's spec.httpPipeline, run
	// between the API token check and routing (see httpapi.Config).
	Pipeline func(next http.Handler) http.Handler
}

// Components reports the loaded components for the metadata API.
type Components interface {
	// Registered lists them.
	Registered() []*runtimev1.RegisteredComponents
	// Extended adds entries to the extended map (component readiness).
	Extended() map[string]string
}

// Interceptors are added to the servers; zero installs nothing.
type Interceptors struct {
	// HTTP wraps the public HTTP API.
	HTTP func(http.Handler) http.Handler
	// GRPC and Internal go before the public and the internal gRPC
	// servers' own options (their interceptors run outermost).
	GRPC     []grpc.ServerOption
	Internal []grpc.ServerOption
	// Lean observes the calls served over the lean transport as Internal
	// observes gRPC ones.
	Lean invoke.LeanServerHook
}

// Sidecar serves the Dapr APIs and the internal port on its Listeners.
type Sidecar struct {
	o   Options
	log *slog.Logger

	httpSrv     *h1server.Server
	grpcSrv     *grpc.Server
	grpcAPI     *grpcapi.API
	internalSrv *grpc.Server
	lean        *transport.LeanServer // nil without mTLS
	metricsSrv  *http.Server
	publicSrv   *http.Server

	apiHandler    http.Handler // the public HTTP API, as httpSrv serves it
	appReady      atomic.Bool
	appConfigOnce sync.Once
	shutdownOnce  sync.Once
	shutdown      chan struct{}
	forceOnce     sync.Once
	forced        chan struct{}
	// graceExceeded: a server had to cut off work in flight at shutdown.
	graceExceeded atomic.Bool

	mu       sync.Mutex
	extended map[string]string

	// invocations counts the app's invocations in flight (Load).
	invocations atomic.Int64
}

// APIHandler is the sidecar's public HTTP API (CORS, the API token, the
// Configuration's httpPipeline, telemetry), for an app inside the sidecar
// to call in process.
func (s *Sidecar) APIHandler() http.Handler { return s.apiHandler }

// MessageSize is the largest gRPC message for a request body limit: the
// transport's default, or more when bodies may be larger.
func MessageSize(maxRequestBodySize int64) int {
	n := int(maxRequestBodySize)
	if n > 0 && n < transport.DefaultMaxMessageSize {
		n = transport.DefaultMaxMessageSize
	}
	return n
}

// New builds the servers; nothing is served until Run.
func New(o Options) (*Sidecar, error) {
	switch {
	case o.Self.AppID == "":
		return nil, errors.New("sidecar: --app-id is required")
	case o.Listeners == nil:
		return nil, errors.New("sidecar: no listeners")
	case o.Invocation.Invoker == nil || o.Invocation.Resolver == nil || o.Invocation.Pool == nil:
		return nil, errors.New("sidecar: service invocation needs an invoker, a resolver and a pool")
	}
	if o.Self.Namespace == "" {
		o.Self.Namespace = identity.DefaultNamespace
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.GracefulShutdown <= 0 {
		o.GracefulShutdown = 5 * time.Second
	}
	s := &Sidecar{o: o, log: o.Log, shutdown: make(chan struct{}), forced: make(chan struct{}), extended: map[string]string{}}
	if o.App.Channel() == nil || o.App.cfg.InProcess != nil {
		s.appReady.Store(true) // no app to wait for, or one inside the sidecar
	}
	if err := s.buildServers(MessageSize(o.APIs.MaxRequestBodySize)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sidecar) buildServers(maxMsg int) error {
	o, self, inv := s.o, s.o.Self, s.o.Invocation
	var appGRPC grpc.ClientConnInterface
	if o.App != nil && o.App.GRPC != nil {
		appGRPC = o.App.GRPC.Conn()
	}
	outbound, err := grpcproxy.NewOutbound(grpcproxy.OutboundOptions{
		AppID: self.AppID, Namespace: self.Namespace, Resolver: inv.Resolver, Pool: inv.Pool, App: appGRPC, Log: s.log,
		Policy: inv.ProxyPolicy,
	})
	if err != nil {
		return err
	}
	var authorize invoke.AuthorizeFunc
	var authorizeGRPC func(context.Context, identity.App, string) error
	if inv.Access != nil {
		authorize, authorizeGRPC = inv.Access.Authorize, inv.Access.AuthorizeGRPC
	}

	sopts := invoke.ServerOptions{AppID: self.AppID, Namespace: self.Namespace, App: countingApp{next: o.App.orNone(), n: &s.invocations}, Authorize: authorize,
		LeanHook: o.Interceptors.Lean, Log: s.log}
	if o.APIs.Actors != nil {
		sopts.Actors = o.APIs.Actors
	}
	srv, err := invoke.NewServer(sopts)
	if err != nil {
		return err
	}
	// Internal server: sidecar-to-sidecar, mTLS when an identity is set;
	// then Tandem callers negotiate the lean transport (ALPN), daprd
	// callers speak gRPC.
	internalCfg := transport.ServerConfig{Source: o.Identity, MaxMessageSize: maxMsg}
	if o.Identity != nil {
		s.lean = transport.NewLeanServer(srv, maxMsg, s.log)
		internalCfg.Lean = s.lean
	}
	internalOpts := append(append(slices.Clone(o.Interceptors.Internal),
		transport.ServerOptions(internalCfg)...),
		grpcproxy.ServerOption())
	if appGRPC != nil {
		inbound, err := grpcproxy.NewInbound(grpcproxy.InboundOptions{AppID: self.AppID, Namespace: self.Namespace, App: appGRPC, Authorize: authorizeGRPC, Direct: true, Log: s.log})
		if err != nil {
			return err
		}
		internalOpts = append(internalOpts, grpc.UnknownServiceHandler(inbound.Handler()))
	}
	s.internalSrv = grpc.NewServer(internalOpts...)
	srv.Register(s.internalSrv)

	// The forwarding entries daprd adds to calls to other apps, worked out
	// once for both APIs.
	forwarded := headers.HostForwarded(self.HostIP)
	apis := o.APIs
	if apis.Configuration != nil {
		apis.Configuration.UseApp(o.App.api())
	}

	// Public gRPC API (plaintext on loopback, like daprd).
	gapi := grpcapi.New(grpcapi.Config{
		AppID: self.AppID, Forwarded: forwarded, Invoker: inv.Invoker, External: inv.External, APIToken: apis.Token, State: apis.State, Secrets: apis.Secrets, PubSub: apis.PubSub, Bindings: apis.Bindings, Lock: apis.Lock, Crypto: apis.Crypto, Conversation: apis.Conversation, Configuration: apis.Configuration, Actors: apis.Actors,
		ActorStreams: apis.ActorStreams, Jobs: apis.Jobs, Workflows: apis.Workflows, Metadata: s.metadata, SetMetadata: s.setMetadata, Shutdown: s.Shutdown, ForceShutdown: s.ForceShutdown, Log: s.log,
	})
	grpcOpts := append(append(slices.Clone(o.Interceptors.GRPC), gapi.ServerOptions()...), grpcproxy.ServerOption(),
		grpc.MaxRecvMsgSize(apiRecvSize(o.APIs.MaxRequestBodySize, maxMsg)), grpc.MaxSendMsgSize(maxMsgOrDefault(maxMsg)),
		grpc.UnknownServiceHandler(outbound.Handler()),
		// Calls run on kept goroutines whose stacks have grown to the API's
		// call depth, not on a new goroutine per call that grows its stack
		// again (runtime.newstack was ~10 % of the caller's CPU for
		// InvokeService and proxied calls). When all are busy, gRPC starts a
		// goroutine as before; handlers wait on the network, hence more
		// workers than processors.
		grpc.NumStreamWorkers(uint32(max(16, 4*runtime.GOMAXPROCS(0)))))
	if o.Identity != nil {
		grpcOpts = append(grpcOpts, svidGRPC(o.Identity)...)
	}
	s.grpcSrv = grpc.NewServer(grpcOpts...)
	gapi.Register(s.grpcSrv)
	if apis.Workflows != nil {
		apis.Workflows.TaskHub().Register(s.grpcSrv)
	}
	s.grpcAPI = gapi

	// Public HTTP API.
	h := httpapi.New(httpapi.Config{
		AppID: self.AppID, Forwarded: forwarded, Invoker: inv.Invoker, External: inv.External, APIToken: apis.Token, MaxRequestBodySize: apis.MaxRequestBodySize,
		State: apis.State, Secrets: apis.Secrets, PubSub: apis.PubSub, Bindings: apis.Bindings, Lock: apis.Lock, Crypto: apis.Crypto, Conversation: apis.Conversation, Configuration: apis.Configuration, Actors: apis.Actors,
		Jobs: apis.Jobs, Workflows: apis.Workflows, Ready: s.ready, OutboundReady: s.outboundReady, Metadata: s.metadata, SetMetadata: s.setMetadata, Shutdown: s.Shutdown, ForceShutdown: s.ForceShutdown, Log: s.log,
		Pipeline: apis.Pipeline,
	})
	// CORS before the token check: preflights carry no token.
	var api http.Handler = h
	if o.Identity != nil {
		api = svidHTTP(h, o.Identity)
	}
	handler := httpapi.Baggage(httpapi.CORS(apis.AllowedOrigins, api))
	if o.Interceptors.HTTP != nil {
		handler = o.Interceptors.HTTP(handler)
	}
	s.apiHandler = handler
	// The API's HTTP/1.1 server answers as net/http's would, at less cost
	// per request (proxy/h1server); h2c goes through the same handler.
	s.httpSrv = &h1server.Server{Handler: withH2C(handler), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeader(apis.ReadBufferSize), Log: s.log}
	if o.Listeners.Public != nil {
		// daprd's public server: health and metadata only, no API token.
		pub := httpapi.New(httpapi.Config{
			AppID: self.AppID, MaxRequestBodySize: apis.MaxRequestBodySize,
			Ready: s.appReady.Load, Metadata: s.metadata, SetMetadata: s.setMetadata, Log: s.log,
		})
		mux := http.NewServeMux()
		for _, p := range []string{"/v1.0/healthz", "/v1.0/healthz/outbound", "/v1.0/metadata", "/v1.0/metadata/{key}"} {
			mux.Handle(p, pub)
		}
		var ph http.Handler = mux
		if o.Interceptors.HTTP != nil {
			ph = o.Interceptors.HTTP(ph)
		}
		s.publicSrv = &http.Server{Handler: ph, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeader(apis.ReadBufferSize)}
	}
	if o.Listeners.Metrics != nil && o.Metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{Registry: o.Metrics}))
		s.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// apiRecvSize is the largest message the public gRPC API takes: the
// request body limit itself, as daprd (--max-body-size 1k refuses a 2 KB
// InvokeActor with ResourceExhausted), else the transport's size.
func apiRecvSize(maxRequestBodySize int64, maxMsg int) int {
	if maxRequestBodySize > 0 {
		return int(maxRequestBodySize)
	}
	return maxMsgOrDefault(maxMsg)
}

func maxMsgOrDefault(n int) int {
	if n <= 0 {
		return transport.DefaultMaxMessageSize
	}
	return n
}

func maxHeader(readBuffer int) int {
	if readBuffer <= 0 {
		return 0
	}
	// Dapr's read buffer bounds the request line and headers together.
	return readBuffer
}

// HTTPAddr, GRPCAddr and InternalAddr return where the APIs listen.
func (s *Sidecar) HTTPAddr() string     { return s.o.Listeners.HTTP[0].Addr().String() }
func (s *Sidecar) GRPCAddr() string     { return s.o.Listeners.GRPC[0].Addr().String() }
func (s *Sidecar) InternalAddr() string { return s.o.Listeners.Internal.Addr().String() }

// Shutdown starts a graceful shutdown; Run returns when it is done.
func (s *Sidecar) Shutdown() {
	s.shutdownOnce.Do(func() { close(s.shutdown) })
}

// Run serves until ctx ends or Shutdown is called, then stops in order:
// pub/sub stops pulling messages and lets deliveries in flight finish, the
// servers stop taking requests and let in-flight ones finish (each up to
// GracefulShutdown), and the metrics server goes last. It returns the
// error of a server that failed, or nil. The listeners are closed when it
// returns.
func (s *Sidecar) Run(ctx context.Context) error {
	lns, grace := s.o.Listeners, s.o.GracefulShutdown
	defer lns.Close()
	servers := []task.Task{
		HTTPTask("http server", s.httpSrv, lns.HTTP, grace),
		serveTask("grpc server", lns.GRPC, s.grpcSrv.Serve, s.stopGRPCAPI(grace)),
		serveTask("internal grpc server", []net.Listener{lns.Internal}, s.internalSrv.Serve, leanStop(s.lean, grpcStop(s.internalSrv, grace), grace)),
	}
	if s.publicSrv != nil {
		servers = append(servers, HTTPTask("public server", s.publicSrv, []net.Listener{lns.Public}, grace))
	}
	var metrics []task.Task
	if s.metricsSrv != nil {
		metrics = append(metrics, HTTPTask("metrics server", s.metricsSrv, []net.Listener{lns.Metrics}, 0))
	}
	s.log.Info("sidecar serving",
		"app_id", s.o.Self.AppID, "http", s.HTTPAddr(), "grpc", s.GRPCAddr(), "internal_grpc", s.InternalAddr(),
		"mtls", s.o.Identity != nil)
	for i := range servers {
		servers[i] = s.noteGraceExceeded(servers[i])
	}
	subscriptions, inputs := s.runSubscriptions, s.runInputBindings
	runCtx := ctx
	if d := s.o.BlockShutdown; d != nil {
		// Subscriptions stop with ctx; the rest only after the block.
		var stop context.CancelFunc
		runCtx, stop = context.WithCancel(context.WithoutCancel(ctx))
		blocked := make(chan struct{})
		go func() { defer close(blocked); s.blockShutdown(ctx, runCtx, *d, stop) }()
		defer func() { stop(); <-blocked }()
		subscriptions = func(subCtx context.Context) error {
			subCtx, cancel := context.WithCancel(subCtx)
			defer context.AfterFunc(ctx, cancel)()
			defer cancel()
			return s.runSubscriptions(subCtx)
		}
		inputs = func(inCtx context.Context) error {
			inCtx, cancel := context.WithCancel(inCtx)
			defer context.AfterFunc(ctx, cancel)()
			defer cancel()
			return s.runInputBindings(inCtx)
		}
	}
	err := task.Run(runCtx, s.log,
		task.Stage{Name: "intake", Grace: grace, Tasks: []task.Task{
			{Name: "shutdown request", Critical: true, Run: s.waitShutdown},
			{Name: "pub/sub subscriptions", Run: subscriptions},
			{Name: "input bindings", Run: inputs},
			{Name: "scheduler jobs", Run: s.runJobs},
		}},
		task.Stage{Name: "servers", Tasks: servers},
		task.Stage{Name: "metrics", Tasks: metrics},
	)
	return s.shutdownOutcome(err)
}

// waitShutdown returns when Shutdown is called or the sidecar is stopping.
func (s *Sidecar) waitShutdown(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.shutdown:
	case <-s.forced:
		s.stopNow()
		return ErrForcedShutdown
	}
	s.log.Info("sidecar shutting down; finishing in-flight requests", "grace", s.o.GracefulShutdown.String())
	return nil
}

// runSubscriptions delivers pub/sub messages once the app listens.
func (s *Sidecar) runSubscriptions(ctx context.Context) error {
	if !s.appReady.Load() && !s.waitForApp(ctx) {
		return nil
	}
	if h := s.o.App.healthChecker(); h != nil {
		s.subscribeWhileHealthy(ctx, h)
		return nil
	}
	s.readAppConfig(ctx)
	if s.o.APIs.PubSub == nil {
		return nil
	}
	return s.o.APIs.PubSub.Run(ctx, s.o.App.api())
}

// serveTask serves srv on every listener until its context ends, then
// calls stop; a listener that fails stops the others and is the task's
// error.
//
// stop reports whether everything in flight finished; if not, the task's
// error is ErrGraceExceeded (daprd exits 1 then).
func serveTask(name string, lns []net.Listener, serve func(net.Listener) error, stop func() bool) task.Task {
	return task.Task{Name: name, Critical: true, Run: func(ctx context.Context) error {
		errc := make(chan error, len(lns))
		for _, ln := range lns {
			go func() { errc <- serve(ln) }()
		}
		var first error
		pending := len(lns)
		select {
		case <-ctx.Done():
		case first = <-errc:
			pending--
		}
		finished := stop()
		for ; pending > 0; pending-- {
			if err := <-errc; first == nil {
				first = err
			}
		}
		if first == nil || errors.Is(first, http.ErrServerClosed) || errors.Is(first, grpc.ErrServerStopped) {
			if !finished {
				return ErrGraceExceeded
			}
			return nil
		}
		return first
	}}
}

// HTTPServer is an HTTP server a task runs: net/http's or h1server's.
type HTTPServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// HTTPTask serves srv on every listener in lns as a critical task: when
// its context ends it stops taking requests and lets in-flight ones finish
// for up to grace (zero: none), then closes. A listener that fails stops
// the others and is the task's error.
func HTTPTask(name string, srv HTTPServer, lns []net.Listener, grace time.Duration) task.Task {
	return serveTask(name, lns, srv.Serve, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			// With no grace nothing was promised.
			return grace <= 0
		}
		return true
	})
}

// grpcStop lets in-flight calls finish for up to grace, then stops.
// stopGRPCAPI ends the API's open topic event streams and the workflow
// workers' work-item streams, as daprd does, and then stops the public
// gRPC server gracefully: streams would otherwise hold it until the grace
// runs out.
func (s *Sidecar) stopGRPCAPI(grace time.Duration) func() bool {
	stop := grpcStop(s.grpcSrv, grace)
	return func() bool {
		s.grpcAPI.CloseStreams()
		if s.o.APIs.Workflows != nil {
			s.o.APIs.Workflows.CloseStreams()
		}
		finished := stop()
		s.grpcAPI.Wait()
		return finished
	}
}

func grpcStop(srv *grpc.Server, grace time.Duration) func() bool {
	return func() bool {
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
			return true
		case <-t.C:
			srv.Stop()
			<-done
			return false
		}
	}
}

// leanStop adds the lean transport's connections to the internal server's
// stop: they were handed over at the TLS handshake, so gRPC's own stop
// does not see them. Both finish their calls within grace.
func leanStop(lean *transport.LeanServer, stop func() bool, grace time.Duration) func() bool {
	if lean == nil {
		return stop
	}
	return func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		leanErr := make(chan error, 1)
		go func() { leanErr <- lean.Shutdown(ctx) }()
		ok := stop()
		return <-leanErr == nil && ok
	}
}

// appWaitReminder is how often waitForApp says it is still waiting.
const appWaitReminder = 5 * time.Second

// waitForApp waits until the app's port accepts connections and reports
// whether it did before ctx ended.
func (s *Sidecar) waitForApp(ctx context.Context) bool {
	c := s.o.App.cfg
	protocol := c.Protocol
	if protocol == "" {
		protocol = "http"
	}
	// daprd's words, which tools and tests look for.
	s.log.Info(fmt.Sprintf("application protocol: %s. waiting on port %d.  This will block until the app is listening on that port.", protocol, c.Port),
		"address", c.ChannelAddress)
	start := time.Now()
	waiting := make(chan struct{})
	defer close(waiting)
	go func() {
		// A reminder now and then while the app is not there yet.
		t := time.NewTicker(appWaitReminder)
		defer t.Stop()
		for {
			select {
			case <-waiting:
				return
			case <-t.C:
				s.log.Info(fmt.Sprintf("waiting for application to listen on port %d", c.Port))
			}
		}
	}()
	if err := appchannel.WaitReady(ctx, c.ChannelAddress, c.Port, 50*time.Millisecond); err != nil {
		return false
	}
	s.appReady.Store(true)
	s.log.Info(fmt.Sprintf("application discovered on port %d", c.Port), "waited", time.Since(start).Round(time.Millisecond).String())
	return true
}

// ready reports whether the sidecar is healthy: the app is reachable and
// its first subscriptions are made.
func (s *Sidecar) ready() bool {
	if !s.appReady.Load() || !s.o.APIs.Actors.Ready() || !s.o.APIs.Jobs.Ready() || !s.outboundReady() {
		return false
	}
	if s.o.APIs.PubSub == nil || s.o.APIs.PubSub.Started() {
		return true
	}
	// Subscriptions wait for a healthy app; the sidecar's health does not
	// (as daprd's).
	if h := s.o.App.healthChecker(); h != nil {
		healthy, _ := h.Watch()
		return !healthy
	}
	return false
}

// outboundReady reports whether the outbound APIs are up: the resources
// loaded after start-up are in effect, and every binding, state store and
// pub/sub component has had its first Init attempt, as daprd's outbound
// health is ready once its components are initialised.
// /v1.0/healthz/outbound answers with it, and the sidecar's health waits
// for it too.
func (s *Sidecar) outboundReady() bool {
	if r := s.o.APIs.ResourcesReady; r != nil && !r() {
		return false
	}
	if b := s.o.APIs.Bindings; b != nil && !b.Settled() {
		return false
	}
	if st := s.o.APIs.State; st != nil && !st.Settled() {
		return false
	}
	if p := s.o.APIs.PubSub; p != nil && !p.InitAttempted() {
		return false
	}
	return true
}

func (s *Sidecar) setMetadata(_ context.Context, key, value string) {
	s.mu.Lock()
	s.extended[key] = value
	s.mu.Unlock()
}

func (s *Sidecar) metadata(ctx context.Context) *runtimev1.GetMetadataResponse {
	s.mu.Lock()
	ext := make(map[string]string, len(s.extended)+1)
	for k, v := range s.extended {
		ext[k] = v
	}
	s.mu.Unlock()
	var registered []*runtimev1.RegisteredComponents
	if c := s.o.APIs.Components; c != nil {
		for k, v := range c.Extended() {
			ext[k] = v
		}
		registered = c.Registered()
	}
	var subs []*runtimev1.PubsubSubscription
	if p := s.o.APIs.PubSub; p != nil {
		subs = p.Subscriptions()
	}
	ext["daprRuntimeVersion"] = s.o.Self.RuntimeVersion
	ext[loadreport.ExtendedKey] = s.Load(ctx).Marshal()
	var app AppConfig
	if s.o.App != nil {
		app = s.o.App.cfg
	}
	if app.InProcess != nil {
		maps.Copy(ext, app.InProcess.Extended())
	}
	protocol := app.Protocol
	if protocol == "" {
		protocol = "http"
	}
	channel := app.ChannelAddress
	if channel == "" {
		channel = "127.0.0.1"
	}
	actorRuntime := s.o.APIs.Actors.Status()
	var sched *runtimev1.MetadataScheduler
	if addrs := s.o.APIs.Jobs.ConnectedAddresses(); len(addrs) > 0 {
		sched = &runtimev1.MetadataScheduler{ConnectedAddresses: addrs}
	}
	return &runtimev1.GetMetadataResponse{
		Id:                   s.o.Self.AppID,
		RuntimeVersion:       s.o.Self.RuntimeVersion,
		ExtendedMetadata:     ext,
		EnabledFeatures:      append([]string{}, s.o.Self.EnabledFeatures...),
		RegisteredComponents: registered,
		Subscriptions:        subs,
		AppConnectionProperties: &runtimev1.AppConnectionProperties{
			Port: int32(app.Port), Protocol: protocol, ChannelAddress: channel,
		},
		Resiliencies:           s.resiliencies(),
		HttpEndpoints:          s.httpEndpoints(),
		McpServers:             s.mcpServers(),
		ActorRuntime:           actorRuntime,
		Scheduler:              sched,
		Workflows:              s.workflows(),
		WorkflowAccessPolicies: s.workflowAccessPolicies(),
		//lint:ignore SA1019 daprd still fills the alias
		ActiveActorsCount: actorRuntime.GetActiveActors(),
	}
}

// workflowAccessPolicies are the WorkflowAccessPolicy resources in force.
func (s *Sidecar) workflowAccessPolicies() []*runtimev1.MetadataWorkflowAccessPolicy {
	if s.o.APIs.Workflows == nil {
		return nil
	}
	var out []*runtimev1.MetadataWorkflowAccessPolicy
	for _, n := range s.o.APIs.Workflows.AccessPolicyNames() {
		out = append(out, &runtimev1.MetadataWorkflowAccessPolicy{Name: n})
	}
	return out
}

// workflows is the workflow engine's part of the metadata; nil without one.
func (s *Sidecar) workflows() *runtimev1.MetadataWorkflows {
	if s.o.APIs.Workflows == nil {
		return nil
	}
	return &runtimev1.MetadataWorkflows{ConnectedWorkers: int32(s.o.APIs.Workflows.ConnectedWorkers())}
}

func (s *Sidecar) httpEndpoints() []*runtimev1.MetadataHTTPEndpoint {
	if s.o.APIs.HTTPEndpoints == nil {
		return nil
	}
	var out []*runtimev1.MetadataHTTPEndpoint
	for _, name := range s.o.APIs.HTTPEndpoints() {
		out = append(out, &runtimev1.MetadataHTTPEndpoint{Name: name})
	}
	return out
}

func (s *Sidecar) mcpServers() []*runtimev1.MetadataMCPServer {
	if s.o.APIs.MCPServers == nil {
		return nil
	}
	var out []*runtimev1.MetadataMCPServer
	for _, name := range s.o.APIs.MCPServers() {
		out = append(out, &runtimev1.MetadataMCPServer{Name: name})
	}
	return out
}

func (s *Sidecar) resiliencies() []*runtimev1.MetadataResiliency {
	if s.o.APIs.Resiliencies == nil {
		return nil
	}
	var out []*runtimev1.MetadataResiliency
	for _, name := range s.o.APIs.Resiliencies() {
		out = append(out, &runtimev1.MetadataResiliency{Name: name})
	}
	return out
}
