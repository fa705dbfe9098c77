// Package headers holds the rules Dapr applies when invocation metadata
// crosses between HTTP headers, gRPC metadata and its internal metadata map
// (FromHTTP, ToHTTP, FromGRPC, ToGRPC), and the forwarding entries a
// sidecar adds to calls it sends to another app (Forwarded).
//
// Both sides of an invocation use it: the caller's APIs (proxy/httpapi,
// proxy/grpcapi) and the channel to the app (proxy/appchannel), so neither
// reaches into the other. It imports only invoke (for the trace context
// conversion).
package headers
