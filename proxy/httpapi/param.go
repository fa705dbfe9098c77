package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// daprParam is the route parameter name as daprd reads it: the path
// segment as it came on the wire, query-unescaped, so "+" is a space and
// "%2B" a plus (clients build these paths with url.QueryEscape). It falls
// back to r.PathValue when the segment cannot be found or unescaped.
func daprParam(r *http.Request, name string) string {
	decoded := r.PathValue(name)
	_, pattern, _ := strings.Cut(r.Pattern, " ")
	if pattern == "" {
		pattern = r.Pattern
	}
	want := "{" + name + "}"
	segs := strings.Split(pattern, "/")
	raw := strings.Split(r.URL.EscapedPath(), "/")
	if len(segs) != len(raw) {
		return decoded
	}
	for i, s := range segs {
		if s != want {
			continue
		}
		v, err := url.QueryUnescape(raw[i])
		if err != nil {
			return decoded
		}
		return v
	}
	return decoded
}
