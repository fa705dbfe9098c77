// Package builtin lists the middleware.http types compiled into tandemd.
// Only cmd imports it.
package builtin

import (
	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/components/middleware/ratelimit"
	"github.com/tandemrun/tandem/components/middleware/routeralias"
	"github.com/tandemrun/tandem/components/middleware/uppercase"
)

// Middlewares maps each spec.type to its constructor.
func Middlewares() map[string]func() middleware.Middleware {
	return map[string]func() middleware.Middleware{
		uppercase.Type:   uppercase.New,
		routeralias.Type: routeralias.New,
		ratelimit.Type:   ratelimit.New,
	}
}

// Kind is the middleware kind with the built-in types, for
// components.NewManager.
func Kind() components.Kind[middleware.Middleware] {
	newFn, types := components.FactoryFromMap(Middlewares())
	return middleware.Kind(newFn, types)
}
