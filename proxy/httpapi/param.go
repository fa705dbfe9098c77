package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// route registers handler for pattern with daprd's parameter decoding:
// every path parameter of a Dapr API route is query-unescaped (see
// daprParams).
func (h *Handler) route(pattern string, handler http.HandlerFunc) {
	h.mux.Handle(pattern, daprParams(handler))
}

// daprParams sets each path parameter of the matched pattern to its
// segment as it came on the wire, query-unescaped, as daprd does for every
// route with parameters: "+" is a space and "%2B" a plus (clients build
// these paths with url.QueryEscape). A {name...} parameter gets the rest of
// the path, unescaped the same way. A parameter whose segment cannot be
// found or unescaped keeps ServeMux's value.
func daprParams(next http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, pattern, _ := strings.Cut(r.Pattern, " ")
		if pattern == "" {
			pattern = r.Pattern
		}
		if strings.Contains(pattern, "{") {
			pathParams(pattern, r.URL.EscapedPath(), func(name, v string) {
				if u, err := url.QueryUnescape(v); err == nil {
					r.SetPathValue(name, u)
				}
			})
		}
		next.ServeHTTP(w, r)
	}
}

// pathParams calls set with each parameter of pattern and its segment of
// the escaped path: a {name...} parameter gets the rest of the path; a
// single-segment one only when path has as many segments as pattern. It
// walks the two strings side by side (splitting them cost two allocations
// per request).
func pathParams(pattern, path string, set func(name, value string)) {
	sameLen := strings.Count(pattern, "/") == strings.Count(path, "/")
	p, e := pattern, path
	for {
		seg, pRest, pMore := strings.Cut(p, "/")
		v, eRest, eMore := strings.Cut(e, "/")
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			if rest, ok := strings.CutSuffix(name, "..."); ok {
				set(rest, e)
			} else if sameLen {
				set(name, v)
			}
		}
		if !pMore || !eMore {
			return // no segment of path is left for the pattern's next ones
		}
		p, e = pRest, eRest
	}
}
