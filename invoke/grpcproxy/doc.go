// Package grpcproxy implements Dapr's gRPC proxying: an app calls its own
// gRPC stub against its sidecar's gRPC port with the metadata
// "dapr-app-id: <target>", and the call travels unchanged (raw frames, no
// schema needed) to the target app through the target's sidecar.
//
// Outbound is the UnknownServiceHandler of the sidecar's public gRPC
// server: it resolves the target and opens the same method on the pooled
// connection to the target sidecar's internal port. Inbound is the
// UnknownServiceHandler of the internal server: it stamps the caller's app
// ID from its certificate and forwards to the local app's gRPC port.
//
// Both servers must be built with ServerOption so unknown methods are read
// as raw frames while the servers' own services keep protobuf.
package grpcproxy
