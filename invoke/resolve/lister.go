package resolve

import "context"

// Lister is implemented by resolvers that can return every healthy
// instance of an app at once. NewCached uses it to cache the whole set and
// spread calls over it; a resolver without it is called on every Resolve.
type Lister interface {
	// List returns the host:port of every healthy instance of req.AppID,
	// in a stable order. No instance is an error wrapping ErrNotFound.
	List(ctx context.Context, req Request) ([]string, error)
}

// FailureMarker is implemented by resolvers that can skip an address after
// a connection to it failed (see Cached.MarkFailed). The invoker finds it by
// type assertion on the Resolver it holds.
type FailureMarker interface {
	// MarkFailed skips addr until the instance list is next refreshed.
	MarkFailed(addr string)
}

// Notifier is implemented by resolvers that learn of changes as they
// happen (pushed to them, as Kubernetes EndpointSlices are). NewCached
// subscribes: a change drops the cached list of that app at once, so the
// next call sees the new instances without waiting for the TTL.
type Notifier interface {
	// OnChange sets fn, called with the app whose instances changed. It is
	// called once, before the first Resolve.
	OnChange(fn func(Request))
}
