package httpapi

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/headers"
	"github.com/tandemrun/tandem/workflow"
)

// Config is what the handler serves with. Nil funcs get safe defaults.
type Config struct {
	// AppID is this sidecar's app ID (for /v1.0/healthz?appid=).
	AppID string
	// Forwarded holds the X-Forwarded-For, X-Forwarded-Host and Forwarded
	// entries added to calls to other apps (headers.HostForwarded); nil
	// adds none.
	Forwarded *headers.Forwarded
	// Invoker performs service invocations; nil answers "invoke API is not
	// ready".
	Invoker invoke.Invoker
	// External, if set, reports whether an invocation target is a service
	// outside Dapr (an HTTP endpoint or a URL): as in daprd, calls to one
	// carry no forwarding headers.
	External func(target string) bool
	// APIToken is DAPR_API_TOKEN: when set, every request but GET of the
	// healthz endpoints must carry it in header dapr-api-token.
	APIToken string
	// MaxRequestBodySize is --dapr-http-max-request-size in bytes; larger
	// bodies get 413. 0 or less means no limit.
	MaxRequestBodySize int64
	// Ready reports whether the sidecar is ready (components loaded, app
	// reachable): /v1.0/healthz. Nil means always.
	Ready func() bool
	// OutboundReady reports whether the outbound APIs are up, without
	// waiting for the app: /v1.0/healthz/outbound. Nil means always.
	OutboundReady func() bool
	// Metadata returns the current metadata for GET /v1.0/metadata
	// (including the extended map). Nil serves only the app ID.
	Metadata func(ctx context.Context) *runtimev1.GetMetadataResponse
	// SetMetadata stores an extended metadata value (PUT /v1.0/metadata/{key}).
	SetMetadata func(ctx context.Context, key, value string)
	// Shutdown starts a graceful shutdown (POST /v1.0/shutdown). It is
	// called on its own goroutine: it may wait for this request to finish.
	Shutdown func()
	// ForceShutdown, with header dapr-force-shutdown: true on POST
	// /v1.0/shutdown, ends the sidecar at once with exit status 1. Called on
	// its own goroutine.
	ForceShutdown func()
	// State, Secrets and PubSub serve the building-block APIs; nil leaves
	// their routes unimplemented.
	State   *api.State
	Secrets *api.Secrets
	PubSub  *api.PubSub
	// Bindings serves the output bindings API; nil leaves it
	// unimplemented.
	Bindings *api.Bindings
	// Lock serves the distributed lock API; nil leaves it unimplemented.
	Lock *api.Lock
	// Crypto serves the cryptography API; nil leaves it unimplemented.
	Crypto *api.Crypto
	// Conversation serves the conversation API; nil leaves it
	// unimplemented.
	Conversation *api.Conversation
	// Configuration serves the configuration API; nil leaves it
	// unimplemented.
	Configuration *api.Configuration
	// Actors serves the actor API; nil answers ERR_ACTOR_NO_PLACEMENT.
	Actors *actors.Runtime
	// Jobs serves the jobs API; nil leaves it unimplemented.
	Jobs *api.Jobs
	// Workflows serves the workflow API; nil answers that the actor
	// runtime is not configured.
	Workflows *workflow.Engine
	// Log receives request failures; nil discards them.
	Log *slog.Logger
	// Pipeline, if set, wraps the routing in the Configuration's
	// spec.httpPipeline (proxy/middleware): its middleware see each request
	// after the API token and body size checks and before routing, as in
	// daprd, and may rewrite it.
	Pipeline func(next http.Handler) http.Handler
}

// Handler is the Dapr HTTP API.
type Handler struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	// tokenHeader is the expected dapr-api-token, as bytes for
	// constant-time comparison; nil when no token is configured.
	token []byte
	// piped is the routing inside the middleware pipeline; nil: none.
	piped http.Handler
}

// New returns the HTTP API handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg, log: cfg.Log, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if cfg.APIToken != "" {
		h.token = []byte(cfg.APIToken)
	}
	h.route("GET /v1.0/healthz", h.healthz)
	h.route("GET /v1.0/healthz/outbound", h.healthzOutbound)
	h.route("GET /v1.0/metadata", h.getMetadata)
	h.route("PUT /v1.0/metadata/{key}", h.putMetadata)
	h.route("POST /v1.0/shutdown", h.shutdown)
	h.registerState()
	h.registerSecrets()
	h.registerPubSub()
	h.registerBindings()
	h.registerLock()
	h.registerCrypto()
	h.registerConversation()
	h.registerConfiguration()
	h.registerActors()
	h.registerJobs()
	h.registerWorkflows()
	if cfg.Pipeline != nil {
		h.piped = cfg.Pipeline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lb, _ := r.Body.(*limitedBody) // nil if a middleware replaced the body
			h.dispatch(w, r, lb)
		}))
	}
	return h
}

// Handle adds a route in http.ServeMux pattern syntax ("POST
// /v1.0/state/{store}"). Requests are matched on their cleaned path, after
// the API token and body size checks. Call it before serving.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	h.mux.Handle(pattern, daprParams(handler))
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.token != nil && !h.authorized(r) {
		// daprd answers with a plain-text 401, not a JSON error.
		http.Error(w, "invalid api token", http.StatusUnauthorized)
		return
	}
	var lb *limitedBody
	if limit := h.cfg.MaxRequestBodySize; limit > 0 {
		if r.ContentLength > limit {
			apierr.WriteHTTP(w, apierr.BodyTooLarge(limit))
			return
		}
		if r.ContentLength < 0 {
			// Chunked: count while streaming.
			lb = &limitedBody{rc: r.Body, left: limit}
			r.Body = lb
		}
	}
	if h.piped != nil {
		h.piped.ServeHTTP(w, r)
		return
	}
	h.dispatch(w, r, lb)
}

// dispatch serves r by its path.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, lb *limitedBody) {
	// Hot path: invocation by path needs no routing.
	if strings.HasPrefix(r.URL.Path, invokePrefix) {
		h.invoke(w, r, lb)
		return
	}
	// The escaped path is cleaned, as daprd's router routes on it: an
	// escaped slash ("%2F") stays inside its segment (an actor method or
	// a reminder name), not a separator for ".." to climb over.
	esc := r.URL.EscapedPath()
	if clean := cleanPath(esc); clean != esc {
		r2 := *r
		u := *r.URL
		u.Path, u.RawPath = clean, ""
		if p, err := url.PathUnescape(clean); err == nil && p != clean {
			u.Path, u.RawPath = p, clean
		}
		r2.URL = &u
		r = &r2
	}
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	// Like daprd, anything else (unknown path, other verb) is invocation.
	h.invoke(w, r, lb)
}

// authorized checks the dapr-api-token header and removes it so it is not
// forwarded. GET of the healthz endpoints needs no token.
func (h *Handler) authorized(r *http.Request) bool {
	got := r.Header[apiTokenHeader]
	if len(got) > 0 && subtle.ConstantTimeCompare([]byte(got[0]), h.token) == 1 {
		delete(r.Header, apiTokenHeader)
		return true
	}
	if r.Method == http.MethodGet {
		switch strings.Trim(cleanPath(r.URL.Path), "/") {
		case "v1.0/healthz", "v1.0/healthz/outbound":
			return true
		}
	}
	return false
}

// cleanPath is daprd's path normalisation: duplicate slashes, "." and ".."
// removed and no trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	return path.Clean(p)
}
