// Package grpcapi serves Dapr's public gRPC API, dapr.proto.runtime.v1.Dapr
// (daprd's port 50001): InvokeService, GetMetadata, SetMetadata and
// Shutdown so far; every other RPC answers Unimplemented through the
// embedded runtimev1.UnimplementedDaprServer.
//
// ServerOptions returns the interceptors that enforce DAPR_API_TOKEN (the
// dapr-api-token metadata) on every RPC of the server, including streams
// served by an UnknownServiceHandler such as the gRPC proxy.
package grpcapi
