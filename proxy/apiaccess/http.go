package apiaccess

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// groupVersions maps daprd's URL versions to its endpoint-group versions.
var groupVersions = map[string]string{
	"v1.0":        "v1",
	"v1.0-alpha1": "v1alpha1",
	"v1.0-alpha2": "v1alpha2",
	"v1.0-beta1":  "v1beta1",
}

// httpGroups are daprd's HTTP endpoint groups; each is the first path
// segment after the version.
var httpGroups = map[string]bool{
	"invoke": true, "state": true, "publish": true, "bindings": true,
	"secrets": true, "actors": true, "metadata": true, "configuration": true,
	"lock": true, "unlock": true, "crypto": true, "subtlecrypto": true,
	"workflows": true, "healthz": true, "jobs": true, "shutdown": true,
	"conversation": true,
}

// endpoint is the daprd endpoint a request path reaches.
type endpoint struct {
	urlVersion   string // v1.0
	groupVersion string // v1
	group        string // state
	always       bool   // health checks
}

// fallback is daprd's catch-all route: service invocation (by the
// dapr-app-id header), which any unknown path or verb reaches.
var fallback = endpoint{urlVersion: "v1.0", groupVersion: "v1", group: "invoke"}

// invokePrefix is routed to invocation before any path cleaning, as the
// HTTP API does.
const invokePrefix = "/v1.0/invoke/"

// classify returns the endpoint p reaches. p is the decoded URL path; it
// is cleaned first like the HTTP API cleans it before routing, so
// "/v1.0//state" or "/v1.0/x/../state" cannot dodge a rule.
func classify(p string) endpoint {
	if strings.HasPrefix(p, invokePrefix) {
		return fallback
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	ver, rest, _ := strings.Cut(p, "/")
	group, sub, _ := strings.Cut(rest, "/")
	gv, ok := groupVersions[ver]
	if !ok || !httpGroups[group] {
		return fallback
	}
	e := endpoint{urlVersion: ver, groupVersion: gv, group: group}
	if group == "healthz" {
		if ver != "v1.0" || (sub != "" && sub != "outbound") {
			return fallback
		}
		e.always = true
	}
	return e
}

// matches is daprd's endpointMatchesAPIAccessRule: the group key
// "<group version>/<group>", or the legacy prefix match of a key on
// "<url version>/<route>".
func (e endpoint) matches(keys map[string]struct{}) bool {
	if _, ok := keys[e.groupVersion+"/"+e.group]; ok {
		return true
	}
	route := e.urlVersion + "/" + e.group
	for k := range keys {
		if strings.HasPrefix(route, k) {
			return true
		}
	}
	return false
}

func (r *Rules) allowEndpoint(e endpoint) bool {
	if e.always || r == nil {
		return true
	}
	if len(r.httpDenied) > 0 && e.matches(r.httpDenied) {
		return false
	}
	return len(r.httpAllowed) == 0 || e.matches(r.httpAllowed)
}

// AllowHTTP reports whether the HTTP API at the decoded URL path p is
// enabled. Paths that are not a Dapr API reach service invocation, as in
// daprd, and are allowed when invocation is.
func (r *Rules) AllowHTTP(p string) bool {
	return r.allowEndpoint(classify(p))
}

// HTTPMiddleware refuses requests to disabled HTTP APIs as daprd does,
// where a disabled route is simply not registered: the request falls to
// service invocation when that is enabled (so the dapr-app-id header or
// Basic auth still invoke the app, and without them the answer is 404
// ERR_DIRECT_INVOKE), and otherwise gets a plain 404. With no HTTP rules it
// returns next.
func (r *Rules) HTTPMiddleware(next http.Handler) http.Handler {
	if !r.HTTPActive() {
		return next
	}
	invokeAllowed := r.allowEndpoint(fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.AllowHTTP(req.URL.Path) {
			next.ServeHTTP(w, req)
			return
		}
		if !invokeAllowed {
			http.NotFound(w, req)
			return
		}
		id := targetAppID(req.Header)
		if id == "" {
			writeNoAppID(w)
			return
		}
		// Invoke id with the whole path as the method, as daprd's
		// fallback does, through the invocation path of the API.
		method := strings.TrimPrefix(path.Clean("/"+req.URL.Path), "/")
		r2 := req.Clone(req.Context())
		r2.Header.Del("Dapr-App-Id")
		r2.Header.Del("Authorization")
		u := *req.URL
		u.Path, u.RawPath = invokePrefix+url.QueryEscape(id)+"/method/"+method, ""
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// targetAppID is the app ID of an invocation by header: dapr-app-id, or
// Basic auth with user "dapr-app-id".
func targetAppID(h http.Header) string {
	if id := h.Get("Dapr-App-Id"); id != "" {
		return id
	}
	auth := h.Get("Authorization")
	enc, ok := strings.CutPrefix(auth, "Basic ")
	if !ok {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return ""
	}
	user, id, ok := strings.Cut(string(b), ":")
	if !ok || strings.Contains(id, ":") || !strings.EqualFold(user, "dapr-app-id") {
		return ""
	}
	return id
}

// writeNoAppID is daprd's ErrDirectInvokeNoAppID.
func writeNoAppID(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"errorCode":"ERR_DIRECT_INVOKE","message":"failed getting app id either from the URL path or the header dapr-app-id"}`))
}
