// Package observe is the sidecar's telemetry: Prometheus metrics with
// Dapr's metric names, OpenTelemetry traces with W3C trace context, and
// API request logging.
//
// It builds HTTP middleware, gRPC server interceptors and gRPC dial options
// that the composition root (cmd/tandemd) hands to the proxy; nothing in
// the request path imports this package. Everything is built from values
// passed in (a prometheus.Registerer, the Configuration's metrics, tracing
// and logging sections): there are no globals, and the OpenTelemetry
// global TracerProvider is never set.
//
// Cost on the hot path is kept low on purpose: metric children are bound
// to their label values once per distinct label set and cached in a
// copy-on-write map (lock-free reads, no allocation per request), label
// sets are capped per metric so a hostile or buggy caller cannot grow
// memory without bound, and with tracing off (samplingRate 0, the default)
// no span is created and the trace interceptors are not installed at all:
// incoming traceparent headers are forwarded untouched by the invoke and
// appchannel packages.
//
// Importers: cmd/tandemd only. observe imports config (types) and
// resiliency (the BreakerState type for hooks) and nothing else of
// Tandem's.
package observe
