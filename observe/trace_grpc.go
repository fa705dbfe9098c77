package observe

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"sync"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	traceparentKey = "traceparent"
	tracestateKey  = "tracestate"
	traceBinKey    = "grpc-trace-bin"

	invokeServiceMethod = runtimev1.Dapr_InvokeService_FullMethodName
)

// mdCarrier adapts gRPC metadata to the propagator, reading
// grpc-trace-bin (OpenCensus, older daprd) when traceparent is absent.
type mdCarrier metadata.MD

func (c mdCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	if key == traceparentKey {
		if v := metadata.MD(c).Get(traceBinKey); len(v) > 0 {
			return parentFromBin([]byte(v[0]))
		}
	}
	return ""
}

func (c mdCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c mdCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// messageCarrier adapts an invocation's metadata map (what the app
// channel turns into the app's headers).
type messageCarrier map[string]*internalsv1.ListStringValue

func (c messageCarrier) Get(key string) string { return firstValue(c, key) }

func (c messageCarrier) Set(key, value string) {
	c[key] = &internalsv1.ListStringValue{Values: []string{value}}
}

func (c messageCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// setTrace writes the span context in ctx as traceparent (and
// grpc-trace-bin for older daprd) into md, replacing what was there.
func (t *Tracing) setTrace(ctx context.Context, md metadata.MD) {
	delete(md, traceparentKey)
	delete(md, tracestateKey)
	delete(md, traceBinKey)
	t.prop.Inject(ctx, mdCarrier(md))
	if bin, ok := binFromSpanContext(trace.SpanContextFromContext(ctx)); ok {
		md[traceBinKey] = []string{string(bin)}
	}
}

func (t *Tracing) setMessageTrace(ctx context.Context, md map[string]*internalsv1.ListStringValue) {
	if md == nil {
		return
	}
	delete(md, traceparentKey)
	delete(md, tracestateKey)
	delete(md, traceBinKey)
	t.prop.Inject(ctx, messageCarrier(md))
}

func endRPCSpan(span trace.Span, err error) {
	if err != nil {
		st := status.Convert(err)
		span.SetAttributes(attribute.Int(attrRPCStatus, int(st.Code())))
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.End()
}

// clientStart starts the caller-side span of a sidecar-to-sidecar call,
// parented on the trace context the invoker put in the outgoing metadata,
// and rewrites that metadata to carry the new span.
func (t *Tracing) clientStart(ctx context.Context, method string, target, invokeMethod string) (context.Context, trace.Span) {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	if md == nil {
		md = metadata.MD{}
	}
	parent := t.prop.Extract(ctx, mdCarrier(md))
	attrs := []attribute.KeyValue{
		attribute.String(attrAppID, t.appID),
		attribute.String(attrRPCService, serviceInvocation),
	}
	if target != "" {
		attrs = append(attrs, attribute.String(attrPeerName, target))
	}
	if invokeMethod != "" {
		attrs = append(attrs, attribute.String(attrInvokeMethod, invokeMethod))
	}
	ctx, span := t.tracer.Start(parent, method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	t.setTrace(ctx, md)
	return metadata.NewOutgoingContext(ctx, md), span
}

func (t *Tracing) clientUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	in, ok := req.(*internalsv1.InternalInvokeRequest)
	if method != callLocalMethod || !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ctx, span := t.clientStart(ctx, method, firstValue(in.GetMetadata(), calleeAppIDKey), in.GetMessage().GetMethod())
	// The callee's sidecar forwards the message's trace context to the app.
	t.setMessageTrace(ctx, in.GetMetadata())
	err := invoker(ctx, method, req, reply, cc, opts...)
	endRPCSpan(span, err)
	return err
}

func (t *Tracing) clientStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != callLocalStreamMethod {
		return streamer(ctx, desc, cc, method, opts...)
	}
	ctx, span := t.clientStart(ctx, method, "", "")
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		endRPCSpan(span, err)
		return nil, err
	}
	return &tracedClientStream{ClientStream: cs, t: t, ctx: ctx, span: span}, nil
}

// tracedClientStream puts the span's trace context into the first request
// chunk and ends the span when the response stream ends.
type tracedClientStream struct {
	grpc.ClientStream
	t    *Tracing
	ctx  context.Context
	span trace.Span
	sent bool
	end  sync.Once
}

func (s *tracedClientStream) SendMsg(m any) error {
	if !s.sent {
		s.sent = true
		if c, ok := m.(*internalsv1.InternalInvokeRequestStream); ok && c.GetRequest() != nil {
			r := c.GetRequest()
			s.span.SetAttributes(
				attribute.String(attrPeerName, firstValue(r.GetMetadata(), calleeAppIDKey)),
				attribute.String(attrInvokeMethod, r.GetMessage().GetMethod()))
			s.t.setMessageTrace(s.ctx, r.GetMetadata())
		}
	}
	return s.ClientStream.SendMsg(m)
}

func (s *tracedClientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.end.Do(func() {
			if errors.Is(err, io.EOF) {
				endRPCSpan(s.span, nil)
			} else {
				endRPCSpan(s.span, err)
			}
		})
	}
	return err
}

// serverStart starts the callee-side span, parented on the caller
// sidecar's span (gRPC metadata).
func (t *Tracing) serverStart(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	md, _ := metadata.FromIncomingContext(ctx)
	return t.serverStartFrom(t.prop.Extract(ctx, mdCarrier(md)), name, attrs...)
}

// serverStartFrom starts the callee-side span under parent.
func (t *Tracing) serverStartFrom(parent context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(attrs, attribute.String(attrAppID, t.appID), attribute.String(attrRPCService, serviceInvocation))
	return t.tracer.Start(parent, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

func (t *Tracing) serverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	in, ok := req.(*internalsv1.InternalInvokeRequest)
	if info.FullMethod != callLocalMethod || !ok {
		return handler(ctx, req)
	}
	method := in.GetMessage().GetMethod()
	ctx, span := t.serverStart(ctx, "CallLocal/"+t.appID+"/"+method,
		attribute.String(attrInvokeMethod, method),
		attribute.String(attrPeerName, firstValue(in.GetMetadata(), callerAppIDKey)))
	t.setMessageTrace(ctx, in.GetMetadata())
	resp, err := handler(ctx, req)
	endRPCSpan(span, err)
	return resp, err
}

func (t *Tracing) serverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != callLocalStreamMethod {
		return handler(srv, ss)
	}
	ctx, span := t.serverStart(ss.Context(), "CallLocal/"+t.appID)
	err := handler(srv, &tracedServerStream{ServerStream: ss, t: t, ctx: ctx, span: span})
	endRPCSpan(span, err)
	return err
}

// tracedServerStream names the span after the method in the first chunk
// and hands the span's trace context on to the app.
type tracedServerStream struct {
	grpc.ServerStream
	t    *Tracing
	ctx  context.Context
	span trace.Span
	got  bool
}

func (s *tracedServerStream) Context() context.Context { return s.ctx }

func (s *tracedServerStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && !s.got {
		s.got = true
		if c, ok := m.(*internalsv1.InternalInvokeRequestStream); ok && c.GetRequest() != nil {
			r := c.GetRequest()
			method := r.GetMessage().GetMethod()
			s.span.SetName("CallLocal/" + s.t.appID + "/" + method)
			s.span.SetAttributes(attribute.String(attrInvokeMethod, method),
				attribute.String(attrPeerName, firstValue(r.GetMetadata(), callerAppIDKey)))
			s.t.setMessageTrace(s.ctx, r.GetMetadata())
		}
	}
	return err
}

// publicUnary traces InvokeService on the public gRPC API: the app's
// trace context (incoming metadata) is the parent, and the handler sees
// the new span's context in its incoming metadata, which it forwards.
func (t *Tracing) publicUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != invokeServiceMethod {
		return handler(ctx, req)
	}
	r, ok := req.(*runtimev1.InvokeServiceRequest)
	if !ok {
		return handler(ctx, req)
	}
	app, method := r.GetId(), r.GetMessage().GetMethod()
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	if md == nil {
		md = metadata.MD{}
	}
	parent := t.prop.Extract(ctx, mdCarrier(md))
	ctx, span := t.tracer.Start(parent, "CallLocal/"+app+"/"+method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String(attrAppID, t.appID), attribute.String(attrRPCService, serviceInvocation),
			attribute.String(attrPeerName, app), attribute.String(attrInvokeMethod, method)))
	t.setTrace(ctx, md)
	resp, err := handler(metadata.NewIncomingContext(ctx, md), req)
	endRPCSpan(span, err)
	return resp, err
}

// GRPCServerOptions trace InvokeService calls and the workflow API
// (TaskHubSidecarService's unary calls) on the public gRPC API.
func (t *Tracing) GRPCServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(t.publicUnary, t.workflowUnary)}
}

// InternalServerOptions trace CallLocal and CallLocalStream on the
// internal (sidecar-to-sidecar) server.
func (t *Tracing) InternalServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(t.serverUnary),
		grpc.ChainStreamInterceptor(t.serverStream),
	}
}

// DialOptions trace calls to other sidecars (client spans).
func (t *Tracing) DialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(t.clientUnary),
		grpc.WithChainStreamInterceptor(t.clientStream),
	}
}

// binFromSpanContext encodes sc as OpenCensus grpc-trace-bin: version 0,
// field 0 trace ID, field 1 span ID, field 2 options.
func binFromSpanContext(sc trace.SpanContext) ([]byte, bool) {
	if !sc.IsValid() {
		return nil, false
	}
	b := make([]byte, 29)
	b[1] = 0
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[2:18], tid[:])
	b[18] = 1
	copy(b[19:27], sid[:])
	b[27] = 2
	b[28] = byte(sc.TraceFlags())
	return b, true
}

func parentFromBin(b []byte) string {
	if len(b) < 29 || b[0] != 0 || b[1] != 0 || b[18] != 1 || b[27] != 2 {
		return ""
	}
	out := make([]byte, 0, 55)
	out = append(out, "00-"...)
	out = hex.AppendEncode(out, b[2:18])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[19:27])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[28:29])
	return string(out)
}

var _ propagation.TextMapCarrier = mdCarrier(nil)
var _ propagation.TextMapCarrier = messageCarrier(nil)
