package observe

import (
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span attribute keys, as Dapr sets them.
const (
	attrAppID        = "dapr.app_id"
	attrInvokeMethod = "dapr.invoke_method"
	attrRPCService   = "rpc.service"
	attrPeerName     = "net.peer.name"
	attrHTTPMethod   = "http.request.method"
	attrHTTPStatus   = "http.response.status_code"
	attrURLPath      = "url.path"
	attrRPCStatus    = "rpc.grpc.status_code"

	serviceInvocation = "ServiceInvocation"
)

// invokeTarget parses /v1.0/invoke/<app>/method/<method>; a request with
// a dapr-app-id header addresses <app> with its whole path as the method.
func invokeTarget(r *http.Request) (app, method string, ok bool) {
	if rest, found := strings.CutPrefix(r.URL.Path, "/v1.0/invoke/"); found {
		app, method, ok = strings.Cut(rest, "/method/")
		return app, method, ok && app != ""
	}
	if id := r.Header.Get("dapr-app-id"); id != "" {
		return id, strings.TrimPrefix(r.URL.Path, "/"), true
	}
	return "", "", false
}

// HTTPMiddleware starts a server span per request to the HTTP API, with
// the caller's traceparent as parent, and replaces the request's
// traceparent/tracestate with the span's so that everything downstream
// (the invocation to another sidecar) is its child. Invocations are named
// CallLocal/<app>/<method> like Dapr's; other API calls "<verb> <path>".
func (t *Tracing) HTTPMiddleware(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		attrs := []attribute.KeyValue{
			attribute.String(attrAppID, t.appID),
			attribute.String(attrHTTPMethod, r.Method),
		}
		var name string
		if app, method, ok := invokeTarget(r); ok {
			name = "CallLocal/" + app + "/" + method
			attrs = append(attrs,
				attribute.String(attrRPCService, serviceInvocation),
				attribute.String(attrPeerName, app),
				attribute.String(attrInvokeMethod, method))
		} else {
			name = r.Method + " " + r.URL.Path
			attrs = append(attrs, attribute.String(attrURLPath, r.URL.Path))
		}
		ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		r.Header.Del("Traceparent")
		r.Header.Del("Tracestate")
		t.prop.Inject(ctx, propagation.HeaderCarrier(r.Header))

		rec, own := recorderFor(w)
		next.ServeHTTP(rec, r.WithContext(ctx))
		st := rec.Status()
		span.SetAttributes(attribute.Int(attrHTTPStatus, st))
		if st >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(st))
		}
		if own {
			rec.release()
		}
	})
}

// AppTransport wraps the app channel's HTTP transport: each call to the
// app gets a client span (child of the span in the request context, or of
// the request's traceparent), and the app receives that span's
// traceparent.
func (t *Tracing) AppTransport(next http.RoundTripper) http.RoundTripper {
	if t == nil {
		return next
	}
	return &tracingTransport{t: t, next: next}
}

type tracingTransport struct {
	t    *Tracing
	next http.RoundTripper
}

func (tt *tracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t := tt.t
	ctx := req.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(req.Header))
	}
	method := strings.TrimPrefix(req.URL.Path, "/")
	ctx, span := t.tracer.Start(ctx, "CallApp/"+t.appID+"/"+method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String(attrAppID, t.appID),
			attribute.String(attrInvokeMethod, method),
			attribute.String(attrHTTPMethod, req.Method)))
	// RoundTrip must not modify the caller's request: clone the header.
	out := req.Clone(ctx)
	out.Header.Del("Traceparent")
	out.Header.Del("Tracestate")
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := tt.next.RoundTrip(out)
	endClientSpan(span, resp, err)
	return resp, err
}

func endClientSpan(span trace.Span, resp *http.Response, err error) {
	defer span.End()
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return
	}
	span.SetAttributes(attribute.Int(attrHTTPStatus, resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
}
