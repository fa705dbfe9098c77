package httpendpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/appchannel"
)

// ResolveFunc reads an endpoint's header values and TLS documents
// (components.Env.ResolveHTTPEndpoint).
type ResolveFunc func(ctx context.Context, e components.HTTPEndpoint) (components.ResolvedHTTPEndpoint, error)

// Options configure a Router.
type Options struct {
	// Next serves every target that is neither an endpoint nor a URL.
	Next invoke.Invoker
	// Resolve reads header values and TLS documents; nil takes them as
	// written (inline values only).
	Resolve ResolveFunc
	// WrapTransport, if set, wraps each client's transport (tracing).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Sent, if set, is told of each call (its target: the endpoint name
	// or the URL) and returns what to tell when the answer comes: the
	// service invocation metrics.
	Sent func(target string) (answered func(status int32))
	Log  *slog.Logger
}

// Router serves invocations of HTTP endpoints and URLs, and passes the
// others on. It is safe for concurrent use.
type Router struct {
	o   Options
	log *slog.Logger
	// urls serves targets that are URLs: system roots, no headers.
	urls *client

	mu    sync.RWMutex
	eps   map[string]*endpoint
	order []string
}

var _ invoke.Invoker = (*Router)(nil)

// New returns a Router with no endpoints.
func New(o Options) (*Router, error) {
	if o.Next == nil {
		return nil, errors.New("http endpoints: the next invoker is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Resolve == nil {
		o.Resolve = components.Env{}.ResolveHTTPEndpoint
	}
	urls, err := newClient(components.ResolvedHTTPEndpoint{}, o.WrapTransport)
	if err != nil {
		return nil, err
	}
	return &Router{o: o, log: o.Log, urls: urls, eps: map[string]*endpoint{}}, nil
}

// Apply makes eps the endpoint set. An endpoint whose definition is
// unchanged keeps its client and connections; a changed or removed one
// lets its calls in flight finish and closes its idle connections.
func (r *Router) Apply(eps []components.HTTPEndpoint) {
	next := make(map[string]*endpoint, len(eps))
	order := make([]string, 0, len(eps))
	r.mu.Lock()
	for _, def := range eps {
		if _, dup := next[def.Name]; dup {
			continue
		}
		if old := r.eps[def.Name]; old != nil && old.def.Same(def) {
			next[def.Name] = old
		} else {
			next[def.Name] = &endpoint{def: def}
		}
		order = append(order, def.Name)
	}
	prev := r.eps
	r.eps, r.order = next, order
	r.mu.Unlock()
	for name, old := range prev {
		if next[name] != old {
			old.close()
		}
	}
}

// Names lists the endpoints in effect, in load order (the metadata API).
func (r *Router) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]string(nil), r.order...)
}

// Close releases idle connections. Calls still in flight finish.
func (r *Router) Close() error {
	r.mu.Lock()
	eps := r.eps
	r.eps, r.order = map[string]*endpoint{}, nil
	r.mu.Unlock()
	for _, e := range eps {
		e.close()
	}
	r.urls.close()
	return nil
}

// IsURL reports whether an invocation target is a base URL rather than an
// app ID (daprd's test: the http:// or https:// prefix).
func IsURL(target string) bool {
	return strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://")
}

// External reports whether target is served here (a URL or a loaded
// endpoint) rather than by Next.
func (r *Router) External(target string) bool {
	if IsURL(target) {
		return true
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.eps[target] != nil
}

// Invoke sends req to the endpoint or URL target names, or hands it to
// Next. Transport failures (connection refused, TLS verification) are
// returned as errors naming the URL, as daprd's do.
func (r *Router) Invoke(ctx context.Context, target string, req *invoke.Request) (*invoke.Response, error) {
	var (
		c   *client
		err error
	)
	switch {
	case IsURL(target):
		c = r.urls
	default:
		r.mu.RLock()
		e := r.eps[target]
		r.mu.RUnlock()
		if e == nil {
			return r.o.Next.Invoke(ctx, target, req)
		}
		if c, err = e.client(ctx, r); err != nil {
			return nil, err
		}
	}
	if req == nil || req.Message.GetMessage() == nil {
		return nil, errors.New("invoke: request has no message")
	}
	msg := req.Message.GetMessage()
	m, err := invoke.NormalizeMethod(msg.GetMethod())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid method: %v", err)
	}
	msg.Method = m

	base := c.base
	if base == nil {
		if base, err = url.Parse(target); err != nil || base.Host == "" {
			return nil, status.Errorf(codes.InvalidArgument, "%q is not a URL to invoke: use http(s)://host[:port][/path]", target)
		}
		base.RawQuery, base.Fragment = "", ""
	}
	return c.invoke(ctx, req, base, r.sent(target))
}

func (r *Router) sent(target string) func(int32) {
	if r.o.Sent == nil {
		return func(int32) {}
	}
	return r.o.Sent(target)
}

// endpoint is one HTTPEndpoint and, once resolved, its client.
type endpoint struct {
	def components.HTTPEndpoint

	mu      sync.Mutex
	c       *client
	closed  bool
	lastErr string
}

// client resolves the endpoint on first use. A failure is not kept: the
// next call tries again (a secret store may have become ready).
func (e *endpoint) client(ctx context.Context, r *Router) (*client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil {
		return e.c, nil
	}
	if e.closed {
		return nil, status.Errorf(codes.Unavailable, "http endpoint %q was just removed or changed", e.def.Name)
	}
	res, err := r.o.Resolve(ctx, e.def)
	if err == nil {
		var c *client
		if c, err = newClient(res, r.o.WrapTransport); err == nil {
			e.c = c
			e.lastErr = ""
			r.log.Info("http endpoint ready", "name", e.def.Name, "base_url", e.def.BaseURL)
			return c, nil
		}
		err = fmt.Errorf("http endpoint %q (%s): %w", e.def.Name, e.def.Source, err)
	}
	if msg := err.Error(); msg != e.lastErr {
		e.lastErr = msg
		r.log.Warn("http endpoint cannot be used yet; calls to it fail until this is fixed", "name", e.def.Name, "error", msg)
	}
	return nil, err
}

func (e *endpoint) close() {
	e.mu.Lock()
	c := e.c
	e.c, e.closed = nil, true
	e.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// invoke makes one call with c to base.
func (c *client) invoke(ctx context.Context, req *invoke.Request, base *url.URL, answered func(int32)) (*invoke.Response, error) {
	hreq, err := appchannel.NewRequest(ctx, req, base)
	if err != nil {
		return nil, err
	}
	for _, h := range c.headers {
		hreq.Header.Set(h.Name, h.Value)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, err
	}
	answered(int32(resp.StatusCode)) //nolint:gosec // HTTP status fits.
	return appchannel.NewResponse(resp), nil
}
