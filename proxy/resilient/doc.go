// Package resilient puts package resiliency to work on service invocation:
// an Invoker decorator that runs every call under the caller's Resiliency
// policy for the target app (retry(breaker(timeout))), a Resolver wrapper
// that takes failing instances out of rotation (outlier ejection), and
// Policies, the hot-reloadable holder of the current resiliency.Set.
//
// Wiring (see cmd/tandemd):
//
//	pol := resilient.NewPolicies(appID, log, resiliency.WithHooks(h))
//	pol.Apply(set.DocumentsOf(resiliency.Kind))      // at start and on every reload
//	rr := resilient.NewResolver(cachedResolver, resilient.ResolverOptions{})
//	inv := resilient.NewInvoker(resilient.InvokerOptions{Next: invoker, Policies: pol.Set, Resolver: rr})
//
// How the pieces meet: the decorator cannot see which instance the
// invoker picked, so before each attempt it puts a small recorder in the
// request's context; the Resolver, which hands out the address, writes it
// there. After the attempt the decorator reports the outcome per address
// to the Resolver's per-app Ejector. The recorder also counts the
// invoker's own transport-level retry (it re-resolves after an unreachable
// peer), so that retry counts against the policy's maxRetries instead of
// doubling it.
//
// Only package proxy's wiring (cmd/tandemd) imports this package.
package resilient
