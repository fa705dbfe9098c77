package observe

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Hooks are what the proxy needs to observe a sidecar, ready for
// proxy.Options. Empty fields mean nothing to install.
type Hooks struct {
	// HTTPMiddleware wraps the public HTTP API.
	HTTPMiddleware func(http.Handler) http.Handler
	// GRPCServerOptions go on the public gRPC API server.
	GRPCServerOptions []grpc.ServerOption
	// InternalServerOptions go on the internal (sidecar-to-sidecar) server.
	InternalServerOptions []grpc.ServerOption
	// DialOptions go on the connections to other sidecars.
	DialOptions []grpc.DialOption
	// AppHTTPTransport wraps the HTTP app channel's transport.
	AppHTTPTransport func(http.RoundTripper) http.RoundTripper
	// AppHTTPCall records the calls the HTTP app channel writes without
	// an http.Request, as AppHTTPTransport would have (an
	// appchannel.CallRecorder). Nil when those calls must go through
	// AppHTTPTransport: tracing is on (a span needs the request) or
	// nothing observes them.
	AppHTTPCall func(method, path string, sent int64, status int, received int64, err error, elapsed time.Duration)
	// LeanClient and LeanServer observe the calls made and served over
	// the lean transport between Tandem sidecars as DialOptions and
	// InternalServerOptions observe gRPC ones (invoke's LeanHook options).
	LeanClient LeanClientHook
	LeanServer LeanServerHook
	// WorkflowTracer records the workflow engine's spans (never nil:
	// with tracing off it records nothing).
	WorkflowTracer trace.Tracer
}

// NewHooks combines metrics, tracing and API logging; each may be nil.
// On HTTP, API logging is outermost and tracing innermost, so the logged
// and measured durations include everything. With all three nil, Hooks
// is empty and the proxy runs with no observation cost at all.
func NewHooks(m *Metrics, t *Tracing, l *APILogger) Hooks {
	h := Hooks{WorkflowTracer: t.Tracer("durabletask")}
	if m != nil || t != nil || l != nil {
		h.HTTPMiddleware = func(next http.Handler) http.Handler {
			return l.HTTPMiddleware(m.HTTPMiddleware(t.HTTPMiddleware(next)))
		}
	}
	h.GRPCServerOptions = append(h.GRPCServerOptions, l.GRPCServerOptions()...)
	h.GRPCServerOptions = append(h.GRPCServerOptions, m.GRPCServerOptions()...)
	h.GRPCServerOptions = append(h.GRPCServerOptions, m.errorCodeServerOptions()...)
	h.GRPCServerOptions = append(h.GRPCServerOptions, t.GRPCServerOptions()...)

	h.InternalServerOptions = append(h.InternalServerOptions, m.GRPCServerOptions()...)
	h.InternalServerOptions = append(h.InternalServerOptions, m.InvokeServerOptions()...)
	h.InternalServerOptions = append(h.InternalServerOptions, t.InternalServerOptions()...)

	h.DialOptions = append(h.DialOptions, m.InvokeDialOptions()...)
	h.DialOptions = append(h.DialOptions, t.DialOptions()...)
	h.LeanClient = leanClientHook(m, t)
	h.LeanServer = leanServerHook(m, t)
	// Metrics outside tracing: the measured call includes the span's cost.
	switch {
	case m != nil && t != nil:
		h.AppHTTPTransport = func(next http.RoundTripper) http.RoundTripper { return m.AppTransport(t.AppTransport(next)) }
	case m != nil:
		h.AppHTTPTransport = m.AppTransport
		h.AppHTTPCall = m.AppCall
	case t != nil:
		h.AppHTTPTransport = t.AppTransport
	}
	return h
}
