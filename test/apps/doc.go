// Package apps holds the small programs end-to-end tests and benchmarks run
// next to sidecars: echo (plain HTTP) and grpcecho (Dapr Go SDK, gRPC).
package apps
