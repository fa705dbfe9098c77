package grpcproxy

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
)

// InboundOptions configure an Inbound.
type InboundOptions struct {
	// AppID and Namespace are this sidecar's app (the callee).
	AppID     string
	Namespace string
	// App is the connection to the local app's gRPC port (h2c).
	App grpc.ClientConnInterface
	// Authorize, if set, decides whether caller may call the full method
	// name; its error is returned as codes.PermissionDenied.
	Authorize func(ctx context.Context, caller identity.App, method string) error
	// Direct accepts calls without "dapr-app-id" from callers that proved
	// an SPIFFE identity over mTLS: proxyless gRPC clients (xDS) that
	// dial this sidecar as the app itself. Plaintext direct calls stay
	// refused.
	Direct bool
	Log    *slog.Logger
}

// Inbound forwards proxied gRPC calls that arrive on the internal port to
// the local app.
type Inbound struct {
	o InboundOptions
}

// NewInbound checks o and returns an Inbound.
func NewInbound(o InboundOptions) (*Inbound, error) {
	if o.AppID == "" || o.Namespace == "" {
		return nil, errors.New("grpc proxy: app id and namespace are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Inbound{o: o}, nil
}

// Handler returns the grpc.StreamHandler to pass to grpc.UnknownServiceHandler.
func (p *Inbound) Handler() grpc.StreamHandler { return p.handle }

func (p *Inbound) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "grpc proxy: method name not found in stream")
	}
	ctx := ss.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	target := first(md, invoke.AppIDKey)
	caller, secure, err := invoke.PeerApp(ctx)
	switch {
	case target == "" && !(p.o.Direct && secure && err == nil):
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	case target == "":
		// A proxyless client's direct call: the certificate says who
		// calls, the port says whom.
	default:
		if appID, _, err := invoke.SplitAppID(target, p.o.Namespace); err != nil || appID != p.o.AppID {
			return status.Errorf(codes.NotFound, "this sidecar serves app %q, not %q", p.o.AppID, target)
		}
	}
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "caller identity: %v", err)
	}
	if !secure {
		// mTLS is off: like daprd, believe what the caller says.
		caller = identity.App{AppID: first(md, invoke.CallerAppIDKey), Namespace: first(md, invoke.CallerNamespaceKey)}
		if caller.Namespace == "" {
			caller.Namespace = p.o.Namespace
		}
	}
	if p.o.Authorize != nil {
		if err := p.o.Authorize(ctx, caller, method); err != nil {
			return status.Error(codes.PermissionDenied, err.Error())
		}
	}
	if p.o.App == nil {
		return status.Errorf(codes.Unavailable, "app %q has no gRPC channel (is --app-protocol grpc set and the app listening?)", p.o.AppID)
	}
	out := outgoingMD(md)
	out.Delete(invoke.AppIDKey) // the proxy's addressing, not the app's business
	if caller.AppID != "" {
		out.Set(invoke.CallerAppIDKey, caller.AppID)
		out.Set(invoke.CallerNamespaceKey, caller.Namespace)
	}
	out.Set(invoke.CalleeAppIDKey, p.o.AppID)
	uctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, out))
	cs, err := p.o.App.NewStream(uctx, proxyStreamDesc, method, callOption())
	if err != nil {
		cancel()
		return err
	}
	return pipe(ss, cs, cancel)
}
