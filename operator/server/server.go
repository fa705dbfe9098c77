package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/identity"
)

// Options configure a Server.
type Options struct {
	// Cache serves the lists and the informers of the dapr.io kinds
	// (controller-runtime's cache, with v1alpha1 and v2alpha1 in its
	// scheme).
	Cache cache.Cache
	// APIReader reads Secrets and Pods directly from the API server, so the
	// operator does not keep every Secret of the cluster in memory.
	APIReader client.Reader
	// Source holds the operator's SVID and the trust anchors that sidecars'
	// certificates must chain to.
	Source *identity.Source
	// Listener accepts the sidecars' connections; the Server closes it.
	Listener net.Listener
	Log      *slog.Logger
}

// Server implements dapr.proto.operator.v1.Operator.
type Server struct {
	operatorv1.UnimplementedOperatorServer
	cache  cache.Cache
	api    client.Reader
	source *identity.Source
	lis    net.Listener
	hub    *hub
	log    *slog.Logger
	sent   func(kind string) // test hook: an event was sent
	// absent holds the optional kinds whose CRD the API server does not
	// serve; set before serving, read-only after.
	absent map[string]bool
	// ready is closed once the caches have synced and the API serves.
	ready chan struct{}
}

var _ operatorv1.OperatorServer = (*Server)(nil)

// New returns a Server; Run serves it.
func New(o Options) (*Server, error) {
	if o.Cache == nil || o.APIReader == nil || o.Source == nil || o.Listener == nil {
		return nil, errors.New("operator server: Cache, APIReader, Source and Listener are required")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cache: o.Cache, api: o.APIReader, source: o.Source, lis: o.Listener, hub: newHub(), log: log, sent: func(string) {}, absent: map[string]bool{}, ready: make(chan struct{})}, nil
}

// Ready is closed once the informers have synced and the API serves: from
// then on a change is streamed to every sidecar subscribed to it. Dapr's
// operator reports healthy only then, and clients (Dapr's own tests among
// them) rely on it: a resource created after /healthz answers is streamed as
// CREATED, never folded silently into the first list.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is where the Server listens.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Run watches the dapr.io kinds and serves sidecars over mTLS until ctx
// ends; the cache must be running (it is waited for).
func (s *Server) Run(ctx context.Context) error {
	if err := s.watch(ctx); err != nil {
		_ = s.lis.Close()
		return err
	}
	if !s.cache.WaitForCacheSync(ctx) {
		_ = s.lis.Close()
		return ctx.Err()
	}
	// Any sidecar whose certificate chains to the trust anchors may
	// connect; each call then checks its namespace and app ID.
	tlsCfg := identity.ServerTLS(s.source, tlsconfig.AuthorizeAny())
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Every sidecar of the cluster holds a connection that is idle
		// but for the rare update, and sends little: a small read buffer
		// keeps the memory per connection low (28 KiB less than gRPC's
		// default; write buffers are already shared between flushes).
		grpc.ReadBufferSize(4<<10),
	)
	operatorv1.RegisterOperatorServer(srv, s)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(s.lis) }()
	close(s.ready)
	s.log.Info("operator API serving sidecars", "address", s.lis.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("operator API: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop() // update streams only end when their sidecar goes
		<-stopped
	}
	<-done
	return nil
}

// changed tells an update from a resync: by resource version, or, where
// the API server sets none, by content.
func changed(o, n client.Object) bool {
	if rv := o.GetResourceVersion(); rv != "" || n.GetResourceVersion() != "" {
		return rv != n.GetResourceVersion()
	}
	return !equality.Semantic.DeepEqual(o, n)
}

// watch feeds the hub from each kind's informer.
func (s *Server) watch(ctx context.Context) error {
	for _, k := range allKinds {
		inf, err := s.cache.GetInformer(ctx, k.object())
		if err != nil && k.optional && meta.IsNoMatchError(err) {
			s.log.Warn("CRD not installed: serving none of its kind (install the chart's CRDs to use it)", "kind", k.name, "error", err)
			s.absent[k.name] = true
			continue
		}
		if err != nil {
			return fmt.Errorf("watch %s: %w (are the dapr.io CRDs installed?)", k.name, err)
		}
		name := k.name
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if o, ok := obj.(client.Object); ok && !initial {
					s.hub.publish(name, operatorv1.ResourceEventType_CREATED, nil, o)
				}
			},
			UpdateFunc: func(oldObj, newObj any) {
				o, ok1 := oldObj.(client.Object)
				n, ok2 := newObj.(client.Object)
				if ok1 && ok2 && changed(o, n) {
					s.hub.publish(name, operatorv1.ResourceEventType_UPDATED, o, n)
				}
			},
			DeleteFunc: func(obj any) {
				if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				if o, ok := obj.(client.Object); ok {
					s.hub.publish(name, operatorv1.ResourceEventType_DELETED, nil, o)
				}
			},
		}); err != nil {
			return fmt.Errorf("watch %s: %w", k.name, err)
		}
	}
	return nil
}
