// Package invoke carries a service invocation from the caller's sidecar to
// the callee's, over Dapr's dapr.proto.internals.v1.ServiceInvocation gRPC
// service on the internal port, secured with SPIFFE mutual TLS.
//
// Invoker is the one service invocation interface: the HTTP and gRPC APIs
// call one, and proxy/resilient's decorator is one that wraps another.
// Client is the caller side's Invoker: it resolves an app ID
// (resolve.Resolver), reuses one pooled connection per remote sidecar
// (transport) and, with a Tandem peer over mTLS, makes the call on the
// lean transport (lean.go: the request and response messages in protobuf
// without data, the bodies raw); with a daprd peer or without mTLS it
// sends CallLocal for small bodies of known size or CallLocalStream
// otherwise.
// Server is the callee side of both (ServeLean and the gRPC service): it
// takes the caller's identity from its certificate and hands the request
// to the local app through an AppChannel.
//
// Actor calls between hosts take the same two ways: CallActor (lean_actor.go)
// sends the actor router's call over the lean transport to a Tandem host
// of transport.LeanALPN, and Server serves it as the gRPC CallActor does,
// through its ActorHost; other peers get gRPC's CallActor.
//
// Request and Response are the protocol-neutral currency shared with proxy,
// which turns the Dapr HTTP and gRPC APIs into them.
package invoke
