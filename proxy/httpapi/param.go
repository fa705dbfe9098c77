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
			segs := strings.Split(pattern, "/")
			raw := strings.Split(r.URL.EscapedPath(), "/")
			for i, s := range segs {
				name, ok := strings.CutPrefix(s, "{")
				if !ok || i >= len(raw) {
					continue
				}
				name = strings.TrimSuffix(name, "}")
				v := raw[i]
				if rest, ok := strings.CutSuffix(name, "..."); ok {
					name, v = rest, strings.Join(raw[i:], "/")
				} else if len(segs) != len(raw) {
					continue
				}
				if u, err := url.QueryUnescape(v); err == nil {
					r.SetPathValue(name, u)
				}
			}
		}
		next.ServeHTTP(w, r)
	}
}
