// Package routeralias is middleware.http.routeralias: it rewrites the
// request path by a table of path templates (metadata routes, a JSON or
// YAML map, as in Dapr; gorilla/mux templates with {var} and {var:regexp},
// whose values are added to the query), so that friendly paths reach Dapr
// API routes or app methods.
package routeralias

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
)

// Type is the spec.type.
const Type = "middleware.http.routeralias"

// Middleware is one routeralias component.
type Middleware struct {
	routes []*route
}

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New() middleware.Middleware { return &Middleware{} }

// Init reads metadata routes (or, as Dapr still accepts, one property per
// route).
func (m *Middleware) Init(_ context.Context, md components.Metadata) error {
	routes, err := parseRoutes(md.Properties)
	if err != nil {
		return components.Permanent(err)
	}
	m.routes = routes
	return nil
}

// parseRoutes reads the route table from a component's properties.
func parseRoutes(props map[string]string) ([]*route, error) {
	table := map[string]string{}
	routesVal, _ := components.Metadata{Properties: props}.Get("routes")
	if len(props) > 1 || (len(props) == 1 && routesVal == "") {
		// Dapr's deprecated form: each property is a route.
		for k, v := range props {
			if k == "" || v == "" {
				return nil, errors.New("invalid key/value pair in metadata: must not be empty (or use the routes property)")
			}
			table[k] = v
		}
	} else if routesVal != "" {
		if err := yaml.Unmarshal([]byte(routesVal), &table); err != nil {
			return nil, fmt.Errorf("failed to decode 'routes' property as JSON or YAML: %w", err)
		}
	}
	out := make([]*route, 0, len(table))
	for k, v := range table {
		r, err := compile(k, v)
		if err != nil {
			return nil, fmt.Errorf("metadata routes: %w", err)
		}
		out = append(out, r)
	}
	// gorilla/mux tries routes in the order they were added, which Dapr
	// takes from a map: exact paths first here, then by template, so the
	// choice is stable.
	sort.Slice(out, func(i, j int) bool {
		if (len(out[i].vars) == 0) != (len(out[j].vars) == 0) {
			return len(out[i].vars) == 0
		}
		return out[i].template < out[j].template
	})
	return out, nil
}

// Handler implements middleware.Middleware.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	routes := m.routes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rt := range routes {
			vars, ok := rt.match(r.URL.Path)
			if !ok {
				continue
			}
			r.URL.Path, r.URL.RawPath = rt.target, ""
			if len(vars) > 0 {
				q := r.URL.Query()
				for k, v := range vars {
					q.Add(k, v)
				}
				r.URL.RawQuery = q.Encode()
			}
			if r.RequestURI != "" {
				r.RequestURI = r.URL.RequestURI()
			}
			break
		}
		next.ServeHTTP(w, r)
	})
}

// Close implements middleware.Middleware.
func (m *Middleware) Close() error { return nil }
