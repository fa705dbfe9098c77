// Package apps holds the small programs end-to-end tests and benchmarks run
// next to sidecars: echo (plain HTTP), grpcecho (Dapr Go SDK, gRPC),
// subscriber (pub/sub subscriber that counts events), flaky (fails,
// hangs or crashes on request, for resiliency and fault tests), workflowapp
// (Go SDK workflows) and actorapp (Go SDK actors).
package apps
