// Package invoke carries a service invocation from the caller's sidecar to
// the callee's, over Dapr's dapr.proto.internals.v1.ServiceInvocation gRPC
// service on the internal port, secured with SPIFFE mutual TLS.
//
// Invoker is the one service invocation interface: the HTTP and gRPC APIs
// call one, and proxy/resilient's decorator is one that wraps another.
// Client is the caller side's Invoker: it resolves an app ID
// (resolve.Resolver), reuses one pooled connection per remote sidecar
// (transport) and sends CallLocal for small bodies of known size or
// CallLocalStream otherwise.
// Server is the callee side: it takes the caller's identity from its
// certificate and hands the request to the local app through an AppChannel.
//
// Request and Response are the protocol-neutral currency shared with proxy,
// which turns the Dapr HTTP and gRPC APIs into them.
package invoke
