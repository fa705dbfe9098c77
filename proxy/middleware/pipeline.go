// Package middleware runs the Configuration's HTTP middleware pipelines:
// spec.httpPipeline around the sidecar's HTTP API and spec.appHttpPipeline
// around its HTTP calls to the app. A Pipeline chains the middleware.http
// components it names, in order, from the components' registry, and
// rebuilds the chain when a component or the Configuration changes (hot
// reload), as daprd's pipelines do.
//
// As in daprd, a handler whose component is not loaded (or is loaded with
// another type or version) is skipped. Unlike daprd, a component that is
// loaded but failed to initialise does not stop the sidecar: its place in
// the chain answers 500 (503 while it is being retried) naming it, so a
// request is never passed on without the filter it should have had; one
// still initialising is waited for. With spec.ignoreErrors a failed one is
// left out, as in daprd.
package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tandemrun/tandem/components"
	cmw "github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// Registry is where a Pipeline finds the middleware components (a
// components.Registry of the middleware kind).
type Registry interface {
	Get(name string) (cmw.Middleware, components.Status, bool)
}

// initWait bounds how long a request waits for a middleware that is still
// initialising before it gets 503.
const initWait = 30 * time.Second

// Pipeline is one named pipeline ("server" or "app").
type Pipeline struct {
	name string
	reg  Registry
	log  *slog.Logger

	mu       sync.Mutex
	handlers []config.Handler
	root     http.Handler
	// changed is closed (and replaced) on every rebuild: requests waiting
	// for an initialising middleware retry then.
	changed chan struct{}

	chain atomic.Pointer[built]
	// waits counts requests that waited for an initialising middleware
	// (tests).
	waits atomic.Int64
}

// built is one chain and whether it holds any handler.
type built struct {
	h     http.Handler
	empty bool
}

// New returns a pipeline over reg with the given handlers (the
// Configuration's spec.httpPipeline.handlers or
// spec.appHttpPipeline.handlers).
func New(name string, reg Registry, handlers []config.Handler, log *slog.Logger) *Pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{name: name, reg: reg, log: log.With("pipeline", name), handlers: handlers, changed: make(chan struct{})}
	p.chain.Store(&built{h: http.NotFoundHandler(), empty: true})
	return p
}

// Wrap sets the handler the pipeline ends in and returns the pipeline as a
// handler; it follows every later rebuild. Call it once.
func (p *Pipeline) Wrap(root http.Handler) http.Handler {
	p.mu.Lock()
	p.root = root
	p.mu.Unlock()
	p.Rebuild()
	return http.HandlerFunc(p.serve)
}

func (p *Pipeline) serve(w http.ResponseWriter, r *http.Request) {
	p.chain.Load().h.ServeHTTP(w, r)
}

// Empty reports whether no middleware applies now: callers may then go
// straight to the root.
func (p *Pipeline) Empty() bool { return p.chain.Load().empty }

// SetHandlers replaces the handler list (a reloaded Configuration).
func (p *Pipeline) SetHandlers(handlers []config.Handler) {
	p.mu.Lock()
	p.handlers = handlers
	p.mu.Unlock()
	p.Rebuild()
}

// Rebuild builds the chain again from the registry; call it after the
// middleware components changed.
func (p *Pipeline) Rebuild() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.root == nil {
		return
	}
	// Handlers built now wait on the channel the next rebuild closes.
	changed := make(chan struct{})
	next := p.root
	var names []string
	for i := len(p.handlers) - 1; i >= 0; i-- {
		hd := p.handlers[i]
		mw, st, ok := p.reg.Get(hd.Name)
		if !ok || st.Type != hd.Type || !sameVersion(st.Version, hd.Version) {
			continue // daprd skips a middleware that is not loaded as named
		}
		switch {
		case st.State == components.StateReady && mw != nil:
			next = p.safe(hd, mw, next)
		case st.IgnoreErrors && st.State != components.StateInitializing:
			// As in daprd, spec.ignoreErrors leaves a failed middleware out.
			p.log.Warn("middleware failed and has spec.ignoreErrors: requests skip it", "middleware", hd.Name, "type", hd.Type, "error", st.Err)
			continue
		default:
			next = p.unavailable(hd, st, next, changed)
		}
		names = append(names, hd.Name)
	}
	p.chain.Store(&built{h: next, empty: len(names) == 0})
	close(p.changed)
	p.changed = changed
	if len(names) > 0 {
		for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
			names[i], names[j] = names[j], names[i]
		}
		p.log.Debug("middleware pipeline built", "handlers", strings.Join(names, ","))
	}
}

// safe builds mw's handler around next; a middleware that panics fails
// the request with 500 instead of the sidecar.
func (p *Pipeline) safe(hd config.Handler, mw cmw.Middleware, next http.Handler) http.Handler {
	var h http.Handler
	func() {
		defer func() {
			if r := recover(); r != nil {
				p.log.Error("middleware handler could not be built", "middleware", hd.Name, "type", hd.Type, "panic", fmt.Sprint(r))
				h = nil
			}
		}()
		h = mw.Handler(next)
	}()
	if h == nil {
		st := components.Status{Name: hd.Name, Type: hd.Type, State: components.StateFailed, Err: fmt.Errorf("its handler could not be built")}
		return p.unavailable(hd, st, next, nil)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				p.log.Error("middleware panicked; the request fails with 500", "middleware", hd.Name, "type", hd.Type, "panic", fmt.Sprint(rec))
				apierr.WriteHTTP(w, Failed(hd.Name, hd.Type, fmt.Errorf("panic: %v", rec)))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// unavailable stands for a middleware that is loaded but cannot filter: it
// waits for one that is initialising (until changed, closed by the next
// rebuild, then the request goes through the chain as rebuilt), and answers
// the others with an error naming it.
func (p *Pipeline) unavailable(hd config.Handler, st components.Status, next http.Handler, changed <-chan struct{}) http.Handler {
	_ = next // never passed on: that is the point
	p.log.Warn("middleware is not ready; requests through the pipeline fail until it is", "middleware", hd.Name, "type", hd.Type, "state", st.State.String(), "error", st.Err)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st.State == components.StateInitializing && changed != nil {
			// One deadline for the whole wait, however many rebuilds it
			// sees.
			ctx := r.Context()
			deadline, ok := ctx.Value(waitKey{}).(time.Time)
			if !ok {
				deadline = time.Now().Add(initWait)
				r = r.WithContext(context.WithValue(ctx, waitKey{}, deadline))
			}
			p.waits.Add(1)
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			select {
			case <-changed:
				p.serve(w, r) // the chain as rebuilt
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		apierr.WriteHTTP(w, NotReady(hd.Name, hd.Type, st))
	})
}

// waitKey carries the deadline of a request's wait for initialising
// middleware.
type waitKey struct{}

// NotReady is the error of a request that met a middleware that cannot
// filter it.
func NotReady(name, typ string, st components.Status) *apierr.Error {
	if st.State == components.StateFailed {
		return Failed(name, typ, st.Err)
	}
	msg := fmt.Sprintf("middleware %s (%s) is not ready (%s)", name, typ, strings.ToLower(st.State.String()))
	if st.Err != nil {
		msg += ": " + st.Err.Error()
	}
	return &apierr.Error{Code: "ERR_MIDDLEWARE_NOT_READY", HTTPStatus: http.StatusServiceUnavailable, GRPCCode: codes.Unavailable,
		Message: msg + "; the request was not passed on"}
}

// Failed is the error of a request that met a middleware that failed.
func Failed(name, typ string, err error) *apierr.Error {
	msg := fmt.Sprintf("middleware %s (%s) failed", name, typ)
	if err != nil {
		msg += ": " + err.Error()
	}
	return &apierr.Error{Code: "ERR_MIDDLEWARE_FAILED", HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
		Message: msg + "; fix its component and the request is filtered again without a restart"}
}

func sameVersion(a, b string) bool {
	norm := func(v string) string {
		v = strings.ToLower(strings.TrimSpace(v))
		if v == "" {
			return "v1"
		}
		return v
	}
	return norm(a) == norm(b)
}
