package grpcapi

import (
	"context"
	"crypto/subtle"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tandemrun/tandem/proxy/apierr"
)

const apiTokenKey = "dapr-api-token"

// ServerOptions returns the options the public gRPC server needs from
// this API: the baggage check, and the API token interceptors when a token
// is configured. They are chained, so other interceptors can be added too.
func (a *API) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(baggageUnary),
		grpc.ChainStreamInterceptor(baggageStream),
	}
	if a.cfg.APIToken == "" {
		return opts
	}
	return append(opts,
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor),
		grpc.ChainStreamInterceptor(a.StreamInterceptor))
}

// UnaryInterceptor rejects calls without the API token (Unauthenticated,
// as daprd) and strips the token from the metadata handlers see.
func (a *API) UnaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.checkToken(ctx)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// StreamInterceptor is UnaryInterceptor for streams.
func (a *API) StreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.checkToken(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &tokenStream{ServerStream: ss, ctx: ctx})
}

// checkToken returns ctx without the token metadata, or daprd's error.
func (a *API) checkToken(ctx context.Context) (context.Context, error) {
	if a.cfg.APIToken == "" {
		return ctx, nil
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx, apierr.FromHTTPStatus(http.StatusUnauthorized, "missing metadata in request")
	}
	got := md.Get(apiTokenKey)
	if len(got) == 0 {
		return ctx, apierr.FromHTTPStatus(http.StatusUnauthorized, "missing api token in request metadata")
	}
	if subtle.ConstantTimeCompare([]byte(got[0]), []byte(a.cfg.APIToken)) != 1 {
		return ctx, apierr.FromHTTPStatus(http.StatusUnauthorized, "authentication error: api token mismatch")
	}
	md = md.Copy()
	delete(md, apiTokenKey)
	return metadata.NewIncomingContext(ctx, md), nil
}

// tokenStream carries the token-free context into stream handlers.
type tokenStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *tokenStream) Context() context.Context { return s.ctx }
