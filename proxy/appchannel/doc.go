// Package appchannel delivers service invocations to the app next to the
// sidecar: HTTP (http, https, h2c) calls http://<channel-address>:<port>/<method>,
// gRPC (grpc, grpcs) calls dapr.proto.runtime.v1.AppCallback/OnInvoke. Both
// implement invoke.AppChannel.
//
// It also owns the header <-> metadata rules Dapr applies when a request or
// response crosses between HTTP and its internal metadata map (HeaderToMetadata,
// MetadataToHeader), which proxy/httpapi reuses, and WaitReady, the probe that
// tells when the app's port accepts connections.
package appchannel
