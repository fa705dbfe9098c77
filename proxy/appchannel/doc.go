// Package appchannel delivers service invocations to the app next to the
// sidecar: HTTP (http, https, h2c) calls http://<channel-address>:<port>/<method>,
// gRPC (grpc, grpcs) calls dapr.proto.runtime.v1.AppCallback/OnInvoke. Both
// implement invoke.AppChannel. WaitReady is the probe that tells when the
// app's port accepts connections.
//
// The header <-> metadata rules it applies on the way to the app and back
// live in proxy/headers, which the sidecar's APIs share.
package appchannel
