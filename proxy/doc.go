// Package proxy is the sidecar's serving side: the Dapr HTTP API
// (httpapi), the Dapr gRPC API (grpcapi) and the internal
// sidecar-to-sidecar gRPC server (invoke.Server and gRPC proxying), served
// on Listeners and shut down in order by Sidecar.Run.
//
// It builds only its servers and their handlers. The parts that a binary
// chooses — the app channel (NewApp), name resolution, the connection
// pool, the invoker and its resiliency wrapper, access control, the
// building-block APIs — are built by the binary's root (cmd/tandemd) and
// handed in through Options as values; the root closes them after Run.
package proxy
