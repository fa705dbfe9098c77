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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(components.WithSVID(r.Context(), id, id)))
	})
}

// svidGRPC is svidHTTP for the gRPC API.
func svidGRPC(id *identity.Source) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(svidUnary(id)), grpc.ChainStreamInterceptor(svidStreamed(id))}
}

func svidUnary(id *identity.Source) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(components.WithSVID(ctx, id, id), req)
	}
}

func svidStreamed(id *identity.Source) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &svidStream{ServerStream: ss, ctx: components.WithSVID(ss.Context(), id, id)})
	}
}

type svidStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *svidStream) Context() context.Context { return s.ctx }
