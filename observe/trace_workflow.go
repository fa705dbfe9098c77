package observe

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// taskHubPrefix is the workflow API's service (the durabletask protocol,
// which has no proto package).
const taskHubPrefix = "/TaskHubSidecarService/"

// workflowUnary traces a unary call of the workflow API as daprd traces
// its API calls: a client span named after the full method, parented on
// the app's trace context (incoming metadata). The handler runs in the
// span's context: the workflow engine's spans (create_orchestration||...)
// are its children unless the request names another parent.
func (t *Tracing) workflowUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, taskHubPrefix) {
		return handler(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	parent := t.prop.Extract(ctx, mdCarrier(md))
	ctx, span := t.tracer.Start(parent, info.FullMethod, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String(attrAppID, t.appID), attribute.String(attrRPCService, "TaskHubSidecarService")))
	resp, err := handler(ctx, req)
	endRPCSpan(span, err)
	return resp, err
}

// Tracer is a tracer of the sidecar's provider, for the spans of its own
// work (the workflow engine's); with tracing off, one that records
// nothing and passes the parent's trace context on.
func (t *Tracing) Tracer(name string) trace.Tracer {
	if t == nil {
		return noop.NewTracerProvider().Tracer(name)
	}
	return t.tp.Tracer(name)
}
