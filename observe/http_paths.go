package observe

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The path label of the HTTP metrics follows Dapr (pkg/diagnostics
// http_monitoring*.go), since dashboards and alerts are written against it:
//
//   - increasedCardinality on (Dapr's default): the request path, with the
//     parts that name a key, a secret, an actor ID or a workflow instance
//     replaced ("/v1.0/state/mystore", "/v1.0/actors/T/{id}/method");
//   - increasedCardinality off: an empty path label;
//   - pathMatching patterns: the pattern a request matches (each pattern
//     also matches under /v1.0/invoke/{app_id}/method); a request none
//     matches gets the label it would have had without patterns.
//
// A handful of app-facing paths (/dapr/config...) are always kept.

// staticPaths keep their path in every mode.
var staticPaths = map[string]bool{
	"/dapr/config":    true,
	"/dapr/metrics":   true,
	"/dapr/subscribe": true,
	"/healthz":        true,
}

// normalizePath collapses repeated slashes and makes the path absolute.
func normalizePath(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// legacyPathLabel is the path label of increasedCardinality: the path with
// per-entity segments replaced so that keys and IDs do not become labels.
func legacyPathLabel(path string) string {
	if path == "" {
		return path
	}
	path = normalizePath(path)
	// Decided from the first two segments without splitting the path
	// (an allocation per request) where no segment is replaced.
	first, rest, _ := strings.Cut(path[1:], "/")
	if second, _, _ := strings.Cut(rest, "/"); first != "actors" {
		switch second {
		case "state", "secrets":
			// "/v1.0/state/store/key": the path up to the store's name.
			if i := nthSlash(path, 4); i > 0 {
				return path[:i]
			}
			return path
		case "actors", "workflows":
		default: // invocations above all
			return path
		}
	}
	parts := strings.SplitN(path[1:], "/", 6)
	if len(parts) < 3 {
		return path
	}
	if parts[0] == "actors" {
		parts[2] = "{id}"
		return strings.Join(parts, "/")
	}
	switch parts[1] {
	case "actors":
		if len(parts) < 5 {
			return path
		}
		parts[3] = "{id}"
		return "/" + strings.Join(parts[:5], "/")
	case "workflows":
		switch {
		case len(parts) < 4:
			return path
		case len(parts) == 4:
			parts[3] = "{instanceId}"
			return "/" + strings.Join(parts, "/")
		case len(parts) == 5 && strings.HasPrefix(parts[4], "start"):
			return "/" + strings.Join(parts[:4], "/") + "/start"
		}
		parts[3] = "{instanceId}"
		if len(parts) == 6 && parts[4] == "raiseEvent" && parts[5] != "" {
			parts[5] = "{eventName}"
			return "/" + strings.Join(parts, "/")
		}
		return "/" + strings.Join(parts[:5], "/")
	}
	return path
}

// nthSlash is the index of the nth '/' in s, -1 if it has fewer.
func nthSlash(s string, n int) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			if n--; n == 0 {
				return i
			}
		}
	}
	return -1
}

// pathMatcher labels paths with the pathMatching pattern they match.
type pathMatcher struct {
	mux *http.ServeMux
	// catchAll: with increasedCardinality and no "/" pattern, unmatched
	// paths match "/" and keep their own path.
	catchAll bool
}

// newPathMatcher registers the patterns (normalized, and each one not
// already under /v1.0/invoke/ also as /v1.0/invoke/{app_id}/method<p>).
// Patterns http.ServeMux rejects are an error naming the field.
func newPathMatcher(patterns []string, legacy bool) (pm *pathMatcher, err error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	var clean []string
	root := false
	for _, raw := range patterns {
		p := normalizePath(raw)
		clean = append(clean, p)
		root = root || p == "/"
		if !strings.HasPrefix(p, "/v1.0/invoke/") {
			clean = append(clean, "/v1.0/invoke/{app_id}/method"+p)
		}
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)
	defer func() {
		if r := recover(); r != nil {
			pm, err = nil, fmt.Errorf("spec.metrics.http.pathMatching: %v (write patterns like /v1.0/state/{store} or /orders/{id})", r)
		}
	}()
	pm = &pathMatcher{mux: http.NewServeMux()}
	for _, p := range clean {
		pm.mux.Handle(p, http.NotFoundHandler())
	}
	if !root && legacy {
		pm.mux.Handle("/", http.NotFoundHandler())
		pm.catchAll = true
	}
	return pm, nil
}

// match returns the pattern path matches ("" for none) and whether the
// matcher is on at all.
func (pm *pathMatcher) match(path string) (string, bool) {
	if pm == nil || path == "" {
		return "", false
	}
	clean := normalizePath(path)
	r := http.Request{Method: http.MethodGet, URL: &url.URL{Path: clean}, Host: "localhost"}
	_, pattern := pm.mux.Handler(&r)
	if pattern == "/" && pm.catchAll {
		return clean, true
	}
	return pattern, true
}

// pathLabeler computes the path label of a request to the API (server) or
// of a call to the app (client).
type pathLabeler struct {
	legacy  bool
	matcher *pathMatcher
}

// serverInput is what the server side feeds to label: the normalized path
// with patterns, the legacy label without, nothing otherwise.
func (l pathLabeler) serverInput(urlPath string) string {
	switch {
	case l.matcher != nil:
		return normalizePath(urlPath)
	case l.legacy:
		return legacyPathLabel(urlPath)
	}
	return ""
}

// label maps a path to its label.
func (l pathLabeler) label(path string) string {
	if staticPaths[path] {
		return path
	}
	if m, ok := l.matcher.match(path); ok && m != "" && (!l.legacy || m != path) {
		return m
	}
	if l.matcher != nil {
		if n := legacyPathLabel(path); n != path {
			if m, ok := l.matcher.match(n); ok && m != "/" && m != "" {
				return m
			}
		}
	}
	if !l.legacy {
		return ""
	}
	return legacyPathLabel(path)
}

// clientLabel is the path label of a call to the app.
func (l pathLabeler) clientLabel(path string) string {
	p := l.label(path)
	if l.legacy || l.matcher != nil {
		return legacyPathLabel(p)
	}
	return p
}
