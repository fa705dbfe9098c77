// Package builtin lists the middleware.http types compiled into tandemd.
// Only cmd imports it.
package builtin

import (
	"log/slog"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/components/middleware/bearer"
	"github.com/tandemrun/tandem/components/middleware/oauth2clientcredentials"
	"github.com/tandemrun/tandem/components/middleware/ratelimit"
	"github.com/tandemrun/tandem/components/middleware/routeralias"
	"github.com/tandemrun/tandem/components/middleware/routerchecker"
	"github.com/tandemrun/tandem/components/middleware/uppercase"
	"github.com/tandemrun/tandem/components/middleware/wasm"
)

// Middlewares maps each spec.type to its constructor.
func Middlewares(log *slog.Logger) map[string]func() middleware.Middleware {
	return map[string]func() middleware.Middleware{
		uppercase.Type:               uppercase.New,
		routeralias.Type:             routeralias.New,
		routerchecker.Type:           routerchecker.New,
		ratelimit.Type:               ratelimit.New,
		wasm.Type:                    wasm.New(log),
		bearer.Type:                  bearer.New(log),
		oauth2clientcredentials.Type: oauth2clientcredentials.New(log),
	}
}

// Kind is the middleware kind with the built-in types, for
// components.NewManager.
func Kind(log *slog.Logger) components.Kind[middleware.Middleware] {
	newFn, types := components.FactoryFromMap(Middlewares(log))
	return middleware.Kind(newFn, types)
}
