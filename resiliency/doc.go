// Package resiliency reads Dapr's Resiliency resource and runs operations
// under its policies: a per-attempt timeout, a circuit breaker and retries,
// composed once in Do as retry(breaker(timeout(op))).
//
// Use it in three steps:
//
//	docs, warnings, err := resiliency.Parse(path, data)   // each file
//	set, err := resiliency.Build(appID, docs, opts...)    // merged, validated
//	p := set.ForApp("orders")                              // or ForComponentOutbound/Inbound
//	res, err := resiliency.Do(ctx, p, op, resiliency.Replayable(true))
//
// Dapr's semantics carry over: several Resiliency files merge (later names
// win), a file whose scopes leave out the app is ignored, targets without a
// policy fall back to the Default…Policy names, circuit breakers keep their
// state across calls (one per policy and target, owned by the Set) and an
// open breaker fails fast without retrying.
//
// Tandem goes further where Dapr users get hurt: operations whose input
// cannot be replayed (streamed bodies) are attempted once; 4xx outcomes other
// than 408 and 429 are not retried unless a matching rule asks for it; a
// per-target retry budget caps retries at a fraction of requests; and an
// Ejector takes single failing instances out of rotation while the app-wide
// breaker stays closed.
//
// Trip expressions are evaluated by a small built-in parser (see ParseTrip),
// not cel-go: it supports the comparisons, arithmetic and && / || / ! that
// Dapr users write over requests, totalSuccesses, totalFailures,
// consecutiveSuccesses and consecutiveFailures.
//
// Metrics are reported through Hooks callbacks, so this package stays free
// of Prometheus. It imports nothing else of Tandem's; invoke, proxy and the
// component runtimes import it.
package resiliency
