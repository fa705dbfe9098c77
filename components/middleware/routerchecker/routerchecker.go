// Package routerchecker is middleware.http.routerchecker: requests whose
// path and query do not match the regular expression in metadata rule get
// 400 "invalid router", as in Dapr.
package routerchecker

import (
	"context"
	"fmt"
	"net/http"
	"regexp"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
)

// Type is the spec.type.
const Type = "middleware.http.routerchecker"

// Middleware is one routerchecker component.
type Middleware struct{ rule *regexp.Regexp }

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New() middleware.Middleware { return &Middleware{} }

// Init compiles metadata rule (empty matches everything, as in Dapr).
func (m *Middleware) Init(_ context.Context, md components.Metadata) error {
	re, err := regexp.Compile(md.String("rule", ""))
	if err != nil {
		return components.Permanent(fmt.Errorf("failed to compile rule regexp: %w", err))
	}
	m.rule = re
	return nil
}

// Handler implements middleware.Middleware.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.rule.MatchString(requestURI(r)) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("invalid router"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requestURI is the escaped path and the query, as Dapr matches them.
func requestURI(r *http.Request) string {
	s := r.URL.EscapedPath()
	if s == "" {
		s = "/"
	}
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		s += "?" + r.URL.RawQuery
	}
	return s
}

// Close implements middleware.Middleware.
func (m *Middleware) Close() error { return nil }
