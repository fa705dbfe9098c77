package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// corsMethods are the methods a cross-origin request may use, as in daprd.
var corsMethods = []string{
	http.MethodHead, http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
}

// CORS wraps next with daprd's CORS handling for --allowed-origins: empty
// (the default) leaves next as is; "*" allows every origin; otherwise a
// comma-separated list of origins, each possibly with one "*" wildcard
// ("https://*.example.com"). It goes before the API token check: a
// preflight (OPTIONS with Access-Control-Request-Method) carries no token
// and is answered here, 200, with the CORS headers when the origin and
// method are allowed and without them otherwise.
func CORS(allowedOrigins string, next http.Handler) http.Handler {
	if allowedOrigins == "" {
		return next
	}
	c := &cors{next: next}
	for o := range strings.SplitSeq(allowedOrigins, ",") {
		o = strings.ToLower(strings.TrimSpace(o))
		switch {
		case o == "*":
			c.all = true
		case o != "":
			c.origins = append(c.origins, o)
		}
	}
	return c
}

type cors struct {
	next    http.Handler
	all     bool
	origins []string // lower case; may hold one "*"
}

func (c *cors) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		c.preflight(w, r)
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" && c.allowed(origin) && slices.Contains(corsMethods, r.Method) {
		h.Set("Access-Control-Allow-Origin", c.allowOrigin(origin))
	}
	c.next.ServeHTTP(w, r)
}

func (c *cors) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	origin := r.Header.Get("Origin")
	method := strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
	if origin != "" && c.allowed(origin) && slices.Contains(corsMethods, method) {
		h.Set("Access-Control-Allow-Origin", c.allowOrigin(origin))
		h.Set("Access-Control-Allow-Methods", method)
		if reqHeaders := r.Header.Get("Access-Control-Request-Headers"); reqHeaders != "" {
			// Every header is allowed: echo the request's list.
			h.Set("Access-Control-Allow-Headers", reqHeaders)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (c *cors) allowOrigin(origin string) string {
	if c.all {
		return "*"
	}
	return origin
}

func (c *cors) allowed(origin string) bool {
	if c.all {
		return true
	}
	origin = strings.ToLower(origin)
	for _, o := range c.origins {
		if pre, suf, wild := strings.Cut(o, "*"); wild {
			if len(origin) >= len(pre)+len(suf) && strings.HasPrefix(origin, pre) && strings.HasSuffix(origin, suf) {
				return true
			}
		} else if o == origin {
			return true
		}
	}
	return false
}
