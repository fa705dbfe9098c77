// Package proxy is the sidecar: it owns the listeners and the lifecycle of
// the Dapr HTTP API (httpapi), the Dapr gRPC API (grpcapi), the internal
// sidecar-to-sidecar gRPC server (invoke.Server and gRPC proxying) and the
// app channel (appchannel), and shuts them down gracefully.
//
// cmd/tandemd builds the identity, the resolver and the Options; proxy
// reaches no further up.
package proxy
