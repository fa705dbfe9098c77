package httpapi

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// Header names the invocation forms read.
const (
	appIDHeader    = "Dapr-App-Id"
	apiTokenHeader = "Dapr-Api-Token"
	authzHeader    = "Authorization"
)

const (
	invokePrefix = "/v1.0/invoke/"
	methodSep    = "/method/"
)

// ParseInvokePath splits a service invocation path
// "/v1.0/invoke/<appID>/method/<method>" as daprd does: repeated slashes
// before the app ID are ignored, the app ID is query-unescaped (so
// "http%3A%2F%2Fhost" names a URL) and kept with any ".namespace" suffix,
// and the method is path-cleaned ("" for none). ok is false when the path
// is not an invocation path.
func ParseInvokePath(p string) (appID, method string, ok bool) {
	rest, found := cutVersionInvoke(p)
	if !found {
		return "", "", false
	}
	i := strings.Index(rest, methodSep)
	if i <= 0 {
		return "", "", false
	}
	appID = rest[:i]
	method = path.Clean(rest[i+len(methodSep):])
	if method == "." {
		method = ""
	}
	if t, err := url.QueryUnescape(appID); err == nil && t != "" {
		appID = t
	}
	return appID, method, true
}

// cutVersionInvoke strips the "v1.0" and "invoke" segments (each after any
// number of slashes) and the slashes after them.
func cutVersionInvoke(p string) (string, bool) {
	// Fast path: the usual, already clean prefix.
	if strings.HasPrefix(p, invokePrefix) && len(p) > len(invokePrefix) && p[len(invokePrefix)] != '/' {
		return p[len(invokePrefix):], true
	}
	for _, seg := range [...]string{"v1.0", "invoke"} {
		p = strings.TrimLeft(p, "/")
		if !strings.HasPrefix(p, seg) || len(p) == len(seg) || p[len(seg)] != '/' {
			return "", false
		}
		p = p[len(seg):]
	}
	p = strings.TrimLeft(p, "/")
	return p, p != ""
}

// findTarget returns the app ID and method of an invocation from, in
// daprd's order: the dapr-app-id header (the whole path is the method),
// Basic auth "dapr-app-id:<id>" (same), or the invocation path. It strips
// the header or the Authorization it used so they are not forwarded.
func findTarget(r *http.Request) (appID, method string) {
	h := r.Header
	if v := h[appIDHeader]; len(v) > 0 && v[0] != "" {
		delete(h, appIDHeader)
		return v[0], strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	}
	if auth := h.Get(authzHeader); strings.HasPrefix(auth, "Basic ") {
		if id, ok := basicAppID(auth[len("Basic "):]); ok {
			delete(h, authzHeader)
			return id, strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		}
	}
	appID, method, _ = ParseInvokePath(r.URL.Path)
	return appID, method
}

// basicAppID decodes base64("dapr-app-id:<id>").
func basicAppID(enc string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	user, id, ok := strings.Cut(string(b), ":")
	if !ok || strings.Contains(id, ":") || !strings.EqualFold(user, "dapr-app-id") {
		return "", false
	}
	return id, true
}
