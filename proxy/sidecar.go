package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/grpcproxy"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/grpcapi"
	"github.com/tandemrun/tandem/proxy/headers"
	"github.com/tandemrun/tandem/proxy/httpapi"
)

// Options configure a Sidecar. Ports may be 0 (pick a free one).
type Options struct {
	AppID     string
	Namespace string
	// RuntimeVersion is reported by the metadata API.
	RuntimeVersion string

	AppPort           int    // 0: no app
	AppProtocol       string // http (default), https, h2c, grpc, grpcs
	AppChannelAddress string
	AppAPIToken       string

	// ListenAddresses are the hosts of the HTTP and gRPC APIs; empty means
	// all interfaces.
	ListenAddresses       []string
	HTTPPort              int
	GRPCPort              int
	InternalListenAddress string
	InternalPort          int
	// HostIP is the address other sidecars dial (registered with the
	// resolver); empty means 127.0.0.1.
	HostIP string

	MaxRequestBodySize int64 // bytes; 0 = unlimited
	ReadBufferSize     int   // bytes; 0 = default
	APIToken           string

	// Identity is this sidecar's SVID source; nil runs without mTLS.
	Identity *identity.Source

	// Authorize and AuthorizeGRPC, if set, decide whether a caller may
	// invoke a method of this app (access control); a denied call never
	// reaches the app.
	Authorize     invoke.AuthorizeFunc
	AuthorizeGRPC func(ctx context.Context, caller identity.App, method string) error

	// NewResolver builds name resolution once the internal port is known.
	NewResolver func(self resolve.Instance) (resolve.Resolver, error)

	// MetricsListenAddress and MetricsPort serve /metrics when MetricsPort
	// is non-negative and Metrics is set.
	MetricsListenAddress string
	MetricsPort          int
	Metrics              *prometheus.Registry

	// Observability hooks (built by package observe); nil or empty
	// installs nothing. HTTPMiddleware wraps the public HTTP API;
	// GRPCServerOptions and InternalServerOptions are added before the
	// servers' own options (their interceptors run outermost);
	// TransportDialOptions go on connections to other sidecars;
	// AppHTTPTransport wraps the HTTP app channel's transport.
	HTTPMiddleware        func(http.Handler) http.Handler
	GRPCServerOptions     []grpc.ServerOption
	InternalServerOptions []grpc.ServerOption
	TransportDialOptions  []grpc.DialOption
	AppHTTPTransport      func(http.RoundTripper) http.RoundTripper

	// WrapInvoker, if set, decorates the service invoker the HTTP and gRPC
	// APIs use (resiliency policies). It is called after NewResolver.
	WrapInvoker func(httpapi.Invoker) httpapi.Invoker

	// State, Secrets and PubSub are the building-block APIs (nil: not
	// served). PubSub.Run is started once the app is reachable.
	State   *api.State
	Secrets *api.Secrets
	PubSub  *api.PubSub
	// Components lists loaded components for the metadata API.
	Components func() []*runtimev1.RegisteredComponents
	// Extended adds entries to the metadata API's extended map (component
	// readiness).
	Extended func() map[string]string
	// Subscriptions lists active subscriptions for the metadata API.
	Subscriptions func() []*runtimev1.PubsubSubscription

	GracefulShutdown time.Duration
	Log              *slog.Logger
}

// Sidecar is a running tandemd: listeners are open once New returns.
type Sidecar struct {
	o   Options
	log *slog.Logger

	httpLns, grpcLns []net.Listener
	internalLn       net.Listener
	metricsLn        net.Listener

	resolver resolve.Resolver
	pool     *transport.Pool
	app      invoke.AppChannel
	appConn  interface{ Close() error }

	httpSrv     *http.Server
	grpcSrv     *grpc.Server
	internalSrv *grpc.Server
	metricsSrv  *http.Server

	appReady     atomic.Bool
	shutdownOnce sync.Once
	shutdown     chan struct{}

	mu       sync.Mutex
	extended map[string]string
}

// New opens the listeners and builds every part; nothing is served until Run.
func New(o Options) (*Sidecar, error) {
	if o.AppID == "" {
		return nil, errors.New("sidecar: --app-id is required")
	}
	if o.Namespace == "" {
		o.Namespace = identity.DefaultNamespace
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.GracefulShutdown <= 0 {
		o.GracefulShutdown = 5 * time.Second
	}
	s := &Sidecar{o: o, log: o.Log, shutdown: make(chan struct{}), extended: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			s.closeAll()
		}
	}()
	var err error
	if s.httpLns, err = listen(o.ListenAddresses, o.HTTPPort, "--dapr-http-port"); err != nil {
		return nil, err
	}
	if s.grpcLns, err = listen(o.ListenAddresses, o.GRPCPort, "--dapr-grpc-port"); err != nil {
		return nil, err
	}
	var internalHosts []string
	if o.InternalListenAddress != "" {
		internalHosts = []string{o.InternalListenAddress}
	}
	lns, err := listen(internalHosts, o.InternalPort, "--dapr-internal-grpc-port")
	if err != nil {
		return nil, err
	}
	s.internalLn = lns[0]
	if o.Metrics != nil && o.MetricsPort >= 0 {
		var hosts []string
		if o.MetricsListenAddress != "" {
			hosts = []string{o.MetricsListenAddress}
		}
		mlns, err := listen(hosts, o.MetricsPort, "--metrics-port")
		if err != nil {
			return nil, err
		}
		s.metricsLn = mlns[0]
	}

	if err := s.buildAppChannel(); err != nil {
		return nil, err
	}
	if o.NewResolver == nil {
		return nil, errors.New("sidecar: no name resolution configured")
	}
	host := o.HostIP
	if host == "" {
		host = "127.0.0.1"
	}
	s.resolver, err = o.NewResolver(resolve.Instance{
		AppID: o.AppID, Namespace: o.Namespace, Address: host,
		InternalPort: port(s.internalLn), HTTPPort: port(s.httpLns[0]), AppPort: o.AppPort,
	})
	if err != nil {
		return nil, fmt.Errorf("name resolution: %w", err)
	}
	maxMsg := int(o.MaxRequestBodySize)
	if maxMsg > 0 && maxMsg < transport.DefaultMaxMessageSize {
		maxMsg = transport.DefaultMaxMessageSize
	}
	s.pool = transport.NewPool(transport.Options{Source: o.Identity, MaxMessageSize: maxMsg, DialOptions: o.TransportDialOptions, Log: o.Log})
	if err := s.buildServers(maxMsg); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *Sidecar) buildAppChannel() error {
	o := s.o
	if o.AppPort == 0 {
		s.appReady.Store(true)
		return nil
	}
	switch o.AppProtocol {
	case "", "http", "https", "h2c":
		ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{
			Address: o.AppChannelAddress, Port: o.AppPort, Protocol: o.AppProtocol,
			APIToken: o.AppAPIToken, MaxResponseHeaderBytes: int64(o.ReadBufferSize),
		})
		if err != nil {
			return err
		}
		if o.AppHTTPTransport != nil {
			ch.Client().Transport = o.AppHTTPTransport(ch.Client().Transport)
		}
		s.app, s.appConn = ch, ch
	case "grpc", "grpcs":
		ch, err := appchannel.NewGRPC(appchannel.GRPCConfig{
			Address: o.AppChannelAddress, Port: o.AppPort, Protocol: o.AppProtocol,
			APIToken: o.AppAPIToken, MaxMessageSize: int(o.MaxRequestBodySize),
		})
		if err != nil {
			return err
		}
		s.app, s.appConn = ch, ch
	default:
		return fmt.Errorf("unknown --app-protocol %q: use http, https, h2c, grpc or grpcs", o.AppProtocol)
	}
	return nil
}

func (s *Sidecar) buildServers(maxMsg int) error {
	o := s.o
	var appGRPC grpc.ClientConnInterface
	if g, ok := s.app.(*appchannel.GRPC); ok {
		appGRPC = g.Conn()
	}
	baseInvoker, err := invoke.NewInvoker(invoke.InvokerOptions{
		Resolver: s.resolver, Pool: s.pool, AppID: o.AppID, Namespace: o.Namespace, Local: s.app, Log: s.log,
	})
	if err != nil {
		return err
	}
	var invoker httpapi.Invoker = baseInvoker
	if o.WrapInvoker != nil {
		invoker = o.WrapInvoker(baseInvoker)
	}
	outbound, err := grpcproxy.NewOutbound(grpcproxy.OutboundOptions{
		AppID: o.AppID, Namespace: o.Namespace, Resolver: s.resolver, Pool: s.pool, App: appGRPC, Log: s.log,
	})
	if err != nil {
		return err
	}

	// Internal server: sidecar-to-sidecar, mTLS when an identity is set.
	internalOpts := append(append(slices.Clone(o.InternalServerOptions),
		transport.ServerOptions(transport.ServerConfig{Source: o.Identity, MaxMessageSize: maxMsg})...),
		grpcproxy.ServerOption())
	if appGRPC != nil {
		inbound, err := grpcproxy.NewInbound(grpcproxy.InboundOptions{AppID: o.AppID, Namespace: o.Namespace, App: appGRPC, Authorize: o.AuthorizeGRPC, Log: s.log})
		if err != nil {
			return err
		}
		internalOpts = append(internalOpts, grpc.UnknownServiceHandler(inbound.Handler()))
	}
	s.internalSrv = grpc.NewServer(internalOpts...)
	if s.app != nil {
		srv, err := invoke.NewServer(invoke.ServerOptions{AppID: o.AppID, Namespace: o.Namespace, App: s.app, Authorize: o.Authorize, Log: s.log})
		if err != nil {
			return err
		}
		srv.Register(s.internalSrv)
	} else {
		srv, err := invoke.NewServer(invoke.ServerOptions{AppID: o.AppID, Namespace: o.Namespace, App: noApp{}, Authorize: o.Authorize, Log: s.log})
		if err != nil {
			return err
		}
		srv.Register(s.internalSrv)
	}

	// The forwarding entries daprd adds to calls to other apps, worked out
	// once for both APIs.
	forwarded := headers.HostForwarded(o.HostIP)

	// Public gRPC API (plaintext on loopback, like daprd).
	gapi := grpcapi.New(grpcapi.Config{
		AppID: o.AppID, Forwarded: forwarded, Invoker: invoker, APIToken: o.APIToken, State: o.State, Secrets: o.Secrets, PubSub: o.PubSub,
		Metadata: s.metadata, SetMetadata: s.setMetadata, Shutdown: s.Shutdown, Log: s.log,
	})
	grpcOpts := append(append(slices.Clone(o.GRPCServerOptions), gapi.ServerOptions()...), grpcproxy.ServerOption(),
		grpc.MaxRecvMsgSize(maxMsgOrDefault(maxMsg)), grpc.MaxSendMsgSize(maxMsgOrDefault(maxMsg)),
		grpc.UnknownServiceHandler(outbound.Handler()))
	s.grpcSrv = grpc.NewServer(grpcOpts...)
	gapi.Register(s.grpcSrv)

	// Public HTTP API.
	h := httpapi.New(httpapi.Config{
		AppID: o.AppID, Forwarded: forwarded, Invoker: invoker, APIToken: o.APIToken, MaxRequestBodySize: o.MaxRequestBodySize,
		State: o.State, Secrets: o.Secrets, PubSub: o.PubSub,
		Ready: s.appReady.Load, Metadata: s.metadata, SetMetadata: s.setMetadata, Shutdown: s.Shutdown, Log: s.log,
	})
	var handler http.Handler = h
	if o.HTTPMiddleware != nil {
		handler = o.HTTPMiddleware(handler)
	}
	s.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeader(o.ReadBufferSize)}
	if s.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{Registry: o.Metrics}))
		s.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
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
func (s *Sidecar) HTTPAddr() string     { return s.httpLns[0].Addr().String() }
func (s *Sidecar) GRPCAddr() string     { return s.grpcLns[0].Addr().String() }
func (s *Sidecar) InternalAddr() string { return s.internalLn.Addr().String() }

// Shutdown starts a graceful shutdown; Run returns when it is done.
func (s *Sidecar) Shutdown() {
	s.shutdownOnce.Do(func() { close(s.shutdown) })
}

// Run serves until ctx ends or Shutdown is called, then stops taking new
// requests, lets in-flight ones finish (up to GracefulShutdown) and returns.
func (s *Sidecar) Run(ctx context.Context) error {
	errc := make(chan error, 8)
	serve := func(name string, f func() error) {
		go func() {
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("%s server: %w", name, err)
			}
		}()
	}
	for _, ln := range s.httpLns {
		serve("http", func() error { return s.httpSrv.Serve(ln) })
	}
	for _, ln := range s.grpcLns {
		serve("grpc", func() error { return s.grpcSrv.Serve(ln) })
	}
	serve("internal grpc", func() error { return s.internalSrv.Serve(s.internalLn) })
	if s.metricsSrv != nil {
		serve("metrics", func() error { return s.metricsSrv.Serve(s.metricsLn) })
	}
	appCtx, cancelApp := context.WithCancel(ctx)
	defer cancelApp()
	subsDone := make(chan struct{})
	go func() {
		defer close(subsDone)
		if !s.appReady.Load() && !s.waitForApp(appCtx) {
			return
		}
		if s.o.PubSub != nil {
			if err := s.o.PubSub.Run(appCtx, s.apiApp()); err != nil {
				s.log.Error("pub/sub subscriptions stopped", "error", err)
			}
		}
	}()
	s.log.Info("sidecar serving",
		"app_id", s.o.AppID, "http", s.HTTPAddr(), "grpc", s.GRPCAddr(), "internal_grpc", s.InternalAddr(),
		"mtls", s.o.Identity != nil)

	var runErr error
	select {
	case <-ctx.Done():
	case <-s.shutdown:
	case runErr = <-errc:
	}
	s.log.Info("sidecar shutting down; finishing in-flight requests", "grace", s.o.GracefulShutdown.String())
	// Stop pulling messages first, and let deliveries in flight finish.
	cancelApp()
	select {
	case <-subsDone:
	case <-time.After(s.o.GracefulShutdown):
		s.log.Warn("pub/sub deliveries still running after the grace period")
	}
	s.stop()
	return runErr
}

// waitForApp waits until the app's port accepts connections and reports
// whether it did before ctx ended.
func (s *Sidecar) waitForApp(ctx context.Context) bool {
	s.log.Info("waiting for the app to listen", "address", s.o.AppChannelAddress, "port", s.o.AppPort)
	start := time.Now()
	if err := appchannel.WaitReady(ctx, s.o.AppChannelAddress, s.o.AppPort, 50*time.Millisecond); err != nil {
		return false
	}
	s.appReady.Store(true)
	s.log.Info("app is listening; sidecar ready", "port", s.o.AppPort, "waited", time.Since(start).Round(time.Millisecond).String())
	return true
}

// apiApp is the app channel as the building-block APIs see it.
func (s *Sidecar) apiApp() api.App {
	var a api.App
	switch ch := s.app.(type) {
	case *appchannel.HTTP:
		a.HTTP = ch
	case *appchannel.GRPC:
		a.GRPC = ch
	}
	return a
}

func (s *Sidecar) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.GracefulShutdown)
	defer cancel()
	var wg sync.WaitGroup
	graceful := func(srv *grpc.Server) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { srv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				srv.Stop()
			}
		}()
	}
	graceful(s.grpcSrv)
	graceful(s.internalSrv)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			_ = s.httpSrv.Close()
		}
	}()
	wg.Wait()
	if s.metricsSrv != nil {
		_ = s.metricsSrv.Close()
	}
	s.closeAll()
}

func (s *Sidecar) closeAll() {
	for _, ln := range append(append([]net.Listener{}, s.httpLns...), s.grpcLns...) {
		_ = ln.Close()
	}
	for _, ln := range []net.Listener{s.internalLn, s.metricsLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if s.resolver != nil {
		if err := s.resolver.Close(); err != nil {
			s.log.Warn("deregister from name resolution", "error", err)
		}
	}
	if s.pool != nil {
		_ = s.pool.Close()
	}
	if s.appConn != nil {
		_ = s.appConn.Close()
	}
}

func (s *Sidecar) setMetadata(_ context.Context, key, value string) {
	s.mu.Lock()
	s.extended[key] = value
	s.mu.Unlock()
}

func (s *Sidecar) metadata(context.Context) *runtimev1.GetMetadataResponse {
	s.mu.Lock()
	ext := make(map[string]string, len(s.extended)+1)
	for k, v := range s.extended {
		ext[k] = v
	}
	s.mu.Unlock()
	if s.o.Extended != nil {
		for k, v := range s.o.Extended() {
			ext[k] = v
		}
	}
	ext["daprRuntimeVersion"] = s.o.RuntimeVersion
	protocol := s.o.AppProtocol
	if protocol == "" {
		protocol = "http"
	}
	channel := s.o.AppChannelAddress
	if channel == "" {
		channel = "127.0.0.1"
	}
	return &runtimev1.GetMetadataResponse{
		Id:                   s.o.AppID,
		RuntimeVersion:       s.o.RuntimeVersion,
		ExtendedMetadata:     ext,
		EnabledFeatures:      []string{},
		RegisteredComponents: s.components(),
		Subscriptions:        s.subscriptions(),
		AppConnectionProperties: &runtimev1.AppConnectionProperties{
			Port: int32(s.o.AppPort), Protocol: protocol, ChannelAddress: channel,
		},
	}
}

// noApp answers invocations when the sidecar runs without an app.
type noApp struct{}

func (noApp) Invoke(context.Context, *invoke.Request) (*invoke.Response, error) {
	return nil, errNoApp
}

var errNoApp = errors.New("this sidecar has no app (started without --app-port)")

func (s *Sidecar) components() []*runtimev1.RegisteredComponents {
	if s.o.Components == nil {
		return nil
	}
	return s.o.Components()
}

func (s *Sidecar) subscriptions() []*runtimev1.PubsubSubscription {
	if s.o.Subscriptions == nil {
		return nil
	}
	return s.o.Subscriptions()
}
