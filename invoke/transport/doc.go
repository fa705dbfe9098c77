// Package transport keeps the connections a sidecar uses to reach other
// sidecars' internal ports, secured with SPIFFE mutual TLS from an
// identity.Source or, when mTLS is disabled, plaintext.
//
// Two protocols share the internal port, chosen by ALPN at the TLS
// handshake:
//
//   - the lean transport (LeanALPN, "tandem-invoke/3"; "tandem-invoke/2",
//     LeanALPNv2, still spoken with an earlier Tandem, has no actor calls),
//     which Tandem sidecars prefer for service invocation and actor calls
//     (FlagActor): a few frame types (head, data, end, status), one call
//     per connection at a time from a keep-alive pool (Pool.Lean,
//     Pool.LeanActor), bodies as
//     they are, a small call in one write each way, both ends reading on the
//     calling goroutine. The server side is a LeanServer, handed the
//     connections by the internal gRPC server's credentials
//     (ServerConfig.Lean);
//   - gRPC over h2 (Dapr's ServiceInvocation, the gRPC proxy, actor
//     reminders, and actor calls with a peer of LeanALPNv2): one
//     connection per remote address shared by all calls (Pool.Get), and the
//     only protocol a daprd offers or accepts, so a mixed mesh falls back to
//     it. Without mTLS it is the only one.
//
// ServerOptions gives the matching server options for the internal gRPC
// server (credentials, message size limits and keepalive), so both ends
// agree.
//
// transport knows nothing about service invocation; invoke and
// invoke/grpcproxy use it.
package transport
