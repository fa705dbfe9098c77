package main

import (
	"log/slog"
	"sync"

	"github.com/tandemrun/tandem/components"
	cmw "github.com/tandemrun/tandem/components/middleware"
	mwbuiltin "github.com/tandemrun/tandem/components/middleware/builtin"
	"github.com/tandemrun/tandem/config"
	pmw "github.com/tandemrun/tandem/proxy/middleware"
)

// pipelines are the Configuration's two HTTP middleware pipelines over the
// middleware components: rebuilt when a middleware component changes
// (resource hot reload) and when the Configuration does.
type pipelines struct {
	server, app *pmw.Pipeline
}

// newMiddlewares builds the middleware component manager. A middleware that
// cannot be initialised does not stop the sidecar (daprd exits): the
// pipelines answer the requests that should go through it with an error
// naming it, so the Manager has no Fatal.
func newMiddlewares(log *slog.Logger, env *components.Env, changed func()) *components.Manager[cmw.Middleware] {
	return components.NewManager(mwbuiltin.Kind(log), components.ManagerOptions{Resolve: env.Resolve, Log: log, Changed: changed})
}

// newPipelines builds the pipelines of cfg over reg.
func newPipelines(cfg *config.Configuration, reg pmw.Registry, log *slog.Logger) *pipelines {
	log = log.With("component", "middleware")
	return &pipelines{
		server: pmw.New("server", reg, cfg.Spec.HTTPPipeline.Handlers, log),
		app:    pmw.New("app", reg, cfg.Spec.AppHTTPPipeline.Handlers, log),
	}
}

// rebuild follows a change of the middleware components.
func (p *pipelines) rebuild() {
	if p == nil {
		return
	}
	p.server.Rebuild()
	p.app.Rebuild()
}

// configure follows a change of the Configuration.
func (p *pipelines) configure(cfg *config.Configuration) {
	if p == nil {
		return
	}
	p.server.SetHandlers(cfg.Spec.HTTPPipeline.Handlers)
	p.app.SetHandlers(cfg.Spec.AppHTTPPipeline.Handlers)
}

// pipelineHook holds the pipelines once they exist, for the callers that
// come first (the component manager's change callback, the Configuration
// reload).
type pipelineHook struct {
	mu sync.Mutex
	p  *pipelines
}

func (h *pipelineHook) set(p *pipelines) {
	h.mu.Lock()
	h.p = p
	h.mu.Unlock()
}

func (h *pipelineHook) get() *pipelines {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.p
}
