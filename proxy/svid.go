package proxy

import (
	"context"
	"net/http"

	"google.golang.org/grpc"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/identity"
)

// svidHTTP gives the component operations of every API request the
// workload's SPIFFE identity (components.WithSVID), as daprd does with
// mTLS on.
func svidHTTP(next http.Handler, id *identity.Source) http.Handler {
	svids := components.NewSVIDs(id, id)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(svids.Context(r.Context())))
	})
}

// svidGRPC is svidHTTP for the gRPC API.
func svidGRPC(id *identity.Source) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(svidUnary(id)), grpc.ChainStreamInterceptor(svidStreamed(id))}
}

func svidUnary(id *identity.Source) grpc.UnaryServerInterceptor {
	svids := components.NewSVIDs(id, id)
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(svids.Context(ctx), req)
	}
}

func svidStreamed(id *identity.Source) grpc.StreamServerInterceptor {
	svids := components.NewSVIDs(id, id)
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &svidStream{ServerStream: ss, ctx: svids.Context(ss.Context())})
	}
}

type svidStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *svidStream) Context() context.Context { return s.ctx }
