package grpcproxy

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/resiliency"
)

// OutboundOptions configure an Outbound.
type OutboundOptions struct {
	// AppID and Namespace are this sidecar's app (the caller).
	AppID     string
	Namespace string
	Resolver  resolve.Resolver
	Pool      *transport.Pool
	// App, if set, is the connection to this sidecar's own app; calls an app
	// addresses to itself go there directly, as in daprd.
	App grpc.ClientConnInterface
	// Policy, if set, returns the resiliency policy for calls to appID
	// (nil: none). It is called per call, so a reload applies to the next.
	Policy func(appID string) *resiliency.Policy
	Log    *slog.Logger
}

// Outbound proxies gRPC calls an app makes with "dapr-app-id" metadata to
// the target app's sidecar.
type Outbound struct {
	o OutboundOptions
}

type failureMarker interface{ MarkFailed(addr string) }

// NewOutbound checks o and returns an Outbound.
func NewOutbound(o OutboundOptions) (*Outbound, error) {
	if o.AppID == "" || o.Namespace == "" || o.Resolver == nil || o.Pool == nil {
		return nil, errors.New("grpc proxy: app id, namespace, resolver and pool are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Outbound{o: o}, nil
}

// Handler returns the grpc.StreamHandler to pass to grpc.UnknownServiceHandler.
func (p *Outbound) Handler() grpc.StreamHandler { return p.handle }

func (p *Outbound) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "grpc proxy: method name not found in stream")
	}
	ctx := ss.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	target := first(md, invoke.AppIDKey)
	if target == "" {
		return status.Errorf(codes.Unimplemented, "unknown method %s; to call another app through the sidecar, set the %q metadata to its app id", method, invoke.AppIDKey)
	}
	appID, ns, err := invoke.SplitAppID(target, p.o.Namespace)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	out := outgoingMD(md)

	self := p.o.App != nil && appID == p.o.AppID && ns == p.o.Namespace
	out.Set(invoke.CallerAppIDKey, p.o.AppID)
	out.Set(invoke.CallerNamespaceKey, p.o.Namespace)
	out.Set(invoke.CalleeAppIDKey, appID)
	if self {
		// Straight to the app: the target app id is the proxy's business,
		// not the app's.
		out.Delete(invoke.AppIDKey)
	}
	open := func(ctx context.Context) (grpc.ClientStream, context.CancelFunc, error) {
		uctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ctx, out))
		if self {
			cs, err := p.o.App.NewStream(uctx, proxyStreamDesc, method, callOption())
			if err != nil {
				cancel()
				return nil, nil, err
			}
			return cs, cancel, nil
		}
		cs, addr, err := p.open(uctx, appID, ns, method)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		p.o.Log.Debug("proxying grpc call", "app_id", appID, "namespace", ns, "address", addr, "method", method)
		return cs, cancel, nil
	}

	var pol *resiliency.Policy
	if p.o.Policy != nil {
		pol = p.o.Policy(appID)
	}
	if pol == nil {
		cs, cancel, err := open(ctx)
		if err != nil {
			return err
		}
		return pipe(ss, cs, cancel)
	}
	return withPolicy(ss, pol, isStream(md), open)
}

// open starts the upstream call, once more on a fresh connection (and
// possibly another instance) if the first one is unreachable: nothing of
// the caller's has been consumed yet, so that is safe.
func (p *Outbound) open(ctx context.Context, appID, ns, method string) (grpc.ClientStream, string, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		addr, err := p.o.Resolver.Resolve(ctx, resolve.Request{AppID: appID, Namespace: ns})
		if err != nil {
			if lastErr != nil {
				return nil, "", lastErr
			}
			return nil, "", status.Errorf(codes.Unavailable, "app %q in namespace %q is not registered or not running: %v", appID, ns, err)
		}
		cc, err := p.o.Pool.Get(addr)
		if err != nil {
			return nil, "", status.Errorf(codes.Unavailable, "connect to sidecar of app %q at %s: %v", appID, addr, err)
		}
		cs, err := cc.NewStream(ctx, proxyStreamDesc, method, callOption())
		if err == nil {
			return cs, addr, nil
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return nil, "", err
		}
		p.o.Pool.Discard(addr, cc)
		if fm, ok := p.o.Resolver.(failureMarker); ok {
			fm.MarkFailed(addr)
		}
		lastErr = status.Errorf(codes.Unavailable, "sidecar of app %q at %s is unreachable: %v", appID, addr, status.Convert(err).Message())
	}
	return nil, "", lastErr
}
