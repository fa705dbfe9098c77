package observe

import (
	"context"
	"time"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The lean transport between Tandem sidecars carries the calls that would
// otherwise be a CallLocal, CallLocalStream or CallActor over gRPC. Its hooks record
// them exactly as the gRPC interceptors and dial options do: the same
// metrics with the same labels (the method label is the gRPC method the
// call stands for) and the same spans, parented through the trace context
// in the request's metadata, which the lean head carries.

// LeanServeFunc runs a call served over the lean transport and returns the
// answer's head (nil if none went out).
type LeanServeFunc = func(context.Context) (*internalsv1.InternalInvokeResponse, error)

// LeanServerHook observes a served lean call (invoke.LeanServerHook).
type LeanServerHook = func(ctx context.Context, method string, in *internalsv1.InternalInvokeRequest, serve LeanServeFunc) (*internalsv1.InternalInvokeResponse, error)

// LeanClientHook observes a lean call made (invoke.LeanClientHook).
type LeanClientHook = func(ctx context.Context, method string, in *internalsv1.InternalInvokeRequest) (
	context.Context, func(*internalsv1.InternalInvokeResponse, error), func(error))

// leanServerHook chains the callee's observers in the internal server's
// interceptor order: gRPC server metrics, invocation metrics, tracing.
// Nil when there is nothing to observe.
func leanServerHook(m *Metrics, t *Tracing) LeanServerHook {
	if m == nil && t == nil {
		return nil
	}
	return func(ctx context.Context, method string, in *internalsv1.InternalInvokeRequest, serve LeanServeFunc) (*internalsv1.InternalInvokeResponse, error) {
		if method == callActorMethod {
			// Of the internal server's interceptors only the gRPC server
			// metrics observe CallActor.
			if m == nil {
				return serve(ctx)
			}
			start := time.Now()
			out, err := serve(ctx)
			m.grpc.record(method, err, time.Since(start))
			return out, err
		}
		inner := serve
		if t != nil {
			inner = func(ctx context.Context) (*internalsv1.InternalInvokeResponse, error) {
				return t.leanServe(ctx, in, serve)
			}
		}
		if m == nil {
			return inner(ctx)
		}
		start := time.Now()
		out, err := inner(ctx)
		m.grpc.record(method, err, time.Since(start))
		m.inv.served(in, out, err)
		return out, err
	}
}

// leanServe runs serve under the callee's span, as serverUnary does; the
// parent is the caller's span, in the request metadata.
func (t *Tracing) leanServe(ctx context.Context, in *internalsv1.InternalInvokeRequest, serve LeanServeFunc) (*internalsv1.InternalInvokeResponse, error) {
	method := in.GetMessage().GetMethod()
	parent := t.prop.Extract(ctx, messageCarrier(in.GetMetadata()))
	ctx, span := t.serverStartFrom(parent, "CallLocal/"+t.appID+"/"+method,
		attribute.String(attrInvokeMethod, method),
		attribute.String(attrPeerName, firstValue(in.GetMetadata(), callerAppIDKey)))
	t.setMessageTrace(ctx, in.GetMetadata())
	out, err := serve(ctx)
	endRPCSpan(span, err)
	return out, err
}

// leanClientHook combines the caller's observers: invocation metrics
// (answered: when the answer's head or the error comes, as for a
// CallLocalStream's first message) and the client span (ended with the
// call). Nil when there is nothing to observe.
func leanClientHook(m *Metrics, t *Tracing) LeanClientHook {
	if m == nil && t == nil {
		return nil
	}
	return func(ctx context.Context, method string, in *internalsv1.InternalInvokeRequest) (context.Context, func(*internalsv1.InternalInvokeResponse, error), func(error)) {
		var answered func(*internalsv1.InternalInvokeResponse, error)
		if m != nil {
			dst := firstValue(in.GetMetadata(), calleeAppIDKey)
			start := m.inv.requestSent(dst)
			answered = func(out *internalsv1.InternalInvokeResponse, err error) {
				m.inv.responseReceived(dst, responseStatus(out, err), start)
			}
		}
		var ended func(error)
		if t != nil {
			// As clientUnary: the span's parent is the trace context the
			// invoker put in the outgoing metadata, and the request's
			// metadata then carries the new span to the callee.
			var span trace.Span
			ctx, span = t.clientStart(ctx, method, firstValue(in.GetMetadata(), calleeAppIDKey), in.GetMessage().GetMethod())
			t.setMessageTrace(ctx, in.GetMetadata())
			ended = func(err error) { endRPCSpan(span, err) }
		}
		return ctx, answered, ended
	}
}
