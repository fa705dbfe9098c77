// Package middleware is the middleware.http component kind: Dapr's HTTP
// middleware components (spec.type middleware.http.<name>), which the
// Configuration's spec.httpPipeline and spec.appHttpPipeline chain around
// the sidecar's HTTP API and its calls to the app (proxy/middleware runs
// the chains). One folder per type implements Middleware; builtin lists
// them for cmd.
package middleware

import (
	"context"
	"net/http"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of middleware components.
const Category = "middleware"

// Middleware is one middleware.http component.
type Middleware interface {
	// Init reads the component's metadata; an error that means the
	// component cannot work as written is wrapped with components.Permanent.
	Init(ctx context.Context, md components.Metadata) error
	// Handler wraps next. It is called again whenever the pipeline is
	// rebuilt (a component of it changed), so it must be cheap and share
	// the component's state (limits, pools) between the handlers it returns.
	Handler(next http.Handler) http.Handler
	// Close releases what Init opened; requests may still be in flight
	// through handlers built before.
	Close() error
}

// Kind is the middleware kind for components.NewManager, with the
// constructors of the compiled-in types.
func Kind(newFn func(typ string) (Middleware, bool), types []string) components.Kind[Middleware] {
	return components.Kind[Middleware]{
		Category: Category,
		Types:    types,
		New:      newFn,
		Init: func(ctx context.Context, m Middleware, md components.Metadata) error {
			return m.Init(ctx, md)
		},
		Close: func(m Middleware) error { return m.Close() },
	}
}
