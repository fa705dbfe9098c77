package grpcapi

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/baggage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// checkBaggage parses the baggage metadata of a call, as daprd's gRPC
// tracing interceptors do whether tracing is on or not: InvalidArgument
// "invalid baggage header: ..." when it does not parse, else the baggage
// to echo in the response header ("" without any).
func checkBaggage(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("baggage")
	if len(vals) == 0 {
		return "", nil
	}
	b, err := baggage.Parse(strings.Join(vals, ","))
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "invalid baggage header: %v", err)
	}
	return b.String(), nil
}

// baggageUnary refuses calls with malformed baggage and echoes valid
// baggage in the response header; the metadata goes on to the app as it
// came (InvokeService forwards it).
func baggageUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	b, err := checkBaggage(ctx)
	if err != nil {
		return nil, err
	}
	if b != "" {
		_ = grpc.SetHeader(ctx, metadata.Pairs("baggage", b))
	}
	return handler(ctx, req)
}

// baggageStream is baggageUnary for streams (and proxied calls).
func baggageStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	b, err := checkBaggage(ss.Context())
	if err != nil {
		return err
	}
	if b != "" {
		_ = ss.SetHeader(metadata.Pairs("baggage", b))
	}
	return handler(srv, ss)
}
