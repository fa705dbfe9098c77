// Package apps holds the small programs end-to-end tests and benchmarks run
// next to sidecars: echo (plain HTTP), grpcecho (Dapr Go SDK, gRPC),
// subscriber (pub/sub subscriber that counts events), flaky (fails,
// hangs or crashes on request, for resiliency and fault tests), workflowapp
// (Go SDK workflows), actorapp (Go SDK actors) and kafkabroker (franz-go's
// kfake, the Kafka protocol peer of the Kafka components' tests).
package apps
