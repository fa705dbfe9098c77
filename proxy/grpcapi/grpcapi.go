package grpcapi

import (
	"context"
	"log/slog"
	"sync"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/appstream"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/headers"
	"github.com/tandemrun/tandem/workflow"
)

// Config is what the API serves with. Nil funcs get safe defaults.
type Config struct {
	// AppID is this sidecar's app ID.
	AppID string
	// Forwarded holds the X-Forwarded-For, X-Forwarded-Host and Forwarded
	// entries added to calls to other apps (headers.HostForwarded); nil
	// adds none.
	Forwarded *headers.Forwarded
	// External, if set, reports whether an invocation target is a service
	// outside Dapr (an HTTP endpoint or a URL): as in daprd, calls to one
	// carry no forwarding headers.
	External func(target string) bool
	// Invoker performs service invocations; nil answers "invoke API is not
	// ready".
	Invoker invoke.Invoker
	// APIToken is DAPR_API_TOKEN: when set, every RPC must carry it in
	// metadata dapr-api-token.
	APIToken string
	// Metadata returns the current metadata (GetMetadata). Nil serves only
	// the app ID.
	Metadata func(ctx context.Context) *runtimev1.GetMetadataResponse
	// SetMetadata stores an extended metadata value (SetMetadata).
	SetMetadata func(ctx context.Context, key, value string)
	// Shutdown starts a graceful shutdown; called on its own goroutine.
	Shutdown func()
	// ForceShutdown, with metadata dapr-force-shutdown: true on Shutdown,
	// ends the sidecar at once with exit status 1. Called on its own
	// goroutine.
	ForceShutdown func()
	// State, Secrets and PubSub serve the building-block RPCs; nil answers
	// Unimplemented.
	State   *api.State
	Secrets *api.Secrets
	PubSub  *api.PubSub
	// Bindings serves InvokeBinding; nil answers Unimplemented.
	Bindings *api.Bindings
	// Lock serves the distributed lock API; nil leaves it unimplemented.
	Lock *api.Lock
	// Crypto serves the cryptography API; nil leaves it unimplemented.
	Crypto *api.Crypto
	// Conversation serves the conversation API; nil leaves it
	// unimplemented.
	Conversation *api.Conversation
	// Configuration serves the configuration API; nil leaves it
	// unimplemented.
	Configuration *api.Configuration
	// Actors serves the actor RPCs; nil answers ERR_ACTOR_NO_PLACEMENT.
	Actors *actors.Runtime
	// ActorStreams carries the actor callback streams of an app that
	// speaks gRPC or has no port (SubscribeActorEventsAlpha1); nil answers
	// FailedPrecondition, as daprd does for an HTTP app.
	ActorStreams *appstream.Streams
	// Jobs serves the jobs RPCs; nil leaves them unimplemented.
	Jobs *api.Jobs
	// Workflows serves the workflow RPCs; nil answers
	// ERR_ACTOR_RUNTIME_NOT_FOUND, as daprd does without actors.
	Workflows *workflow.Engine
	// Log receives failures; nil discards them.
	Log *slog.Logger
}

// API implements runtimev1.DaprServer.
type API struct {
	runtimev1.UnimplementedDaprServer
	cfg Config
	log *slog.Logger

	// closing ends the long-lived streams (topic event streams) when the
	// sidecar stops, as daprd's API does: a gRPC server stops gracefully
	// only once every stream has ended. readers counts the goroutines
	// that read those streams; they end once the stream's RPC is over.
	closing   chan struct{}
	closeOnce sync.Once
	readers   sync.WaitGroup
}

var _ runtimev1.DaprServer = (*API)(nil)

// New returns the gRPC API for cfg.
func New(cfg Config) *API {
	a := &API{cfg: cfg, log: cfg.Log, closing: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a
}

// CloseStreams ends the open topic event streams (their clients see the
// stream end with Unavailable) so that the server can stop gracefully.
func (a *API) CloseStreams() {
	a.closeOnce.Do(func() { close(a.closing) })
}

// Wait returns when the goroutines reading ended streams are done; call it
// after the server has stopped.
func (a *API) Wait() {
	a.readers.Wait()
}

// Register adds the Dapr service to s.
func (a *API) Register(s *grpc.Server) {
	runtimev1.RegisterDaprServer(s, a)
}

// GetMetadata returns the sidecar's metadata.
func (a *API) GetMetadata(ctx context.Context, _ *runtimev1.GetMetadataRequest) (*runtimev1.GetMetadataResponse, error) {
	var m *runtimev1.GetMetadataResponse
	if a.cfg.Metadata != nil {
		m = a.cfg.Metadata(ctx)
	}
	if m == nil {
		m = &runtimev1.GetMetadataResponse{}
	}
	if m.GetId() == "" {
		m.Id = a.cfg.AppID
	}
	return m, nil
}

// SetMetadata stores an extended metadata value; an empty key is a no-op,
// as in Dapr.
func (a *API) SetMetadata(ctx context.Context, in *runtimev1.SetMetadataRequest) (*emptypb.Empty, error) {
	if in.GetKey() != "" && a.cfg.SetMetadata != nil {
		a.cfg.SetMetadata(ctx, in.GetKey(), in.GetValue())
	}
	return &emptypb.Empty{}, nil
}

// Shutdown starts a graceful shutdown and returns at once.
func (a *API) Shutdown(ctx context.Context, _ *runtimev1.ShutdownRequest) (*emptypb.Empty, error) {
	if a.cfg.ForceShutdown != nil && api.IsForceShutdown(metadata.ValueFromIncomingContext(ctx, api.ForceShutdownKey)) {
		a.log.Warn(api.LogForceShutdown)
		go a.cfg.ForceShutdown()
	} else if a.cfg.Shutdown != nil {
		a.log.Info(api.LogShutdownRequested)
		go a.cfg.Shutdown()
	}
	return &emptypb.Empty{}, nil
}
