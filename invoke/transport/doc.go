// Package transport keeps the gRPC client connections a sidecar uses to
// reach other sidecars' internal ports: one connection per remote address,
// shared by all calls (HTTP/2 multiplexes them), secured with SPIFFE mutual
// TLS from an identity.Source or, when mTLS is disabled, plaintext.
//
// It also provides the matching server options for the internal gRPC server
// (credentials, message size limits and keepalive), so both ends agree.
//
// transport knows nothing about service invocation; invoke and
// invoke/grpcproxy use it.
package transport
