package workflow

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tandemrun/tandem/internal/spanid"
)

// The engine's spans are those durabletask-go's backend makes in daprd:
//
//   - create_orchestration||{name}, when an instance is created through the
//     API: a child of the request's ParentTraceContext (the client's
//     span) if it has one, else of the call's span. The instance's
//     ExecutionStarted event keeps it as its ParentTraceContext.
//   - orchestration||{name}, the instance's whole life: a child of its
//     ExecutionStarted event's ParentTraceContext, from its first run to
//     its end (or continue-as-new), exported only then. Its ID is chosen
//     at the first run and kept in the event (WorkflowSpanID): the
//     activities and children it schedules before its end name it as
//     their parent.
//   - activity||{name}, each activity run: a child of its TaskScheduled
//     event's ParentTraceContext; the work item the app's worker gets
//     carries it as the parent of the app's own spans.
//
// A version, when set, is a third part of the name. With tracing off the
// tracer records nothing and each span's context is its parent's, which is
// passed on as it came.

// tracer is the engine's tracer (Config.Tracer; one that records nothing
// if none).
func (e *Engine) tracer() trace.Tracer {
	if e.cfg.Tracer != nil {
		return e.cfg.Tracer
	}
	return noop.NewTracerProvider().Tracer("workflow")
}

// spanName is durabletask's span name: kind||name[||version].
func spanName(kind, name, version string) string {
	switch {
	case version != "":
		return kind + "||" + name + "||" + version
	case name != "":
		return kind + "||" + name
	}
	return kind
}

// traceContext is sc as a work item carries it (W3C traceparent); nil
// when sc is not valid or not sampled, as durabletask passes on only
// sampled contexts.
func traceContext(sc trace.SpanContext) *protos.TraceContext {
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	tc := &protos.TraceContext{TraceParent: "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()}
	if ts := sc.TraceState().String(); ts != "" {
		tc.TraceState = wrap(ts)
	}
	return tc
}

// spanContextOf reads a work item's trace context: a W3C traceparent, or
// the SDKs' older form (TraceParent the trace ID, SpanID the span ID,
// sampled).
func spanContextOf(tc *protos.TraceContext) (trace.SpanContext, error) {
	if tc == nil {
		return trace.SpanContext{}, errors.New("no trace context")
	}
	//lint:ignore SA1019 the SDKs' older form still arrives from older clients
	traceID, spanID, flags := tc.GetTraceParent(), tc.GetSpanID(), "01"
	if parts := strings.Split(tc.GetTraceParent(), "-"); len(parts) == 4 {
		traceID, spanID, flags = parts[1], parts[2], parts[3]
	}
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		return trace.SpanContext{}, err
	}
	sid, err := trace.SpanIDFromHex(spanID)
	if err != nil {
		return trace.SpanContext{}, err
	}
	f, err := hex.DecodeString(flags)
	if err != nil || len(f) != 1 {
		return trace.SpanContext{}, errors.New("trace flags " + flags + " are not one hex byte")
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(f[0]), Remote: true}
	if s := tc.GetTraceState().GetValue(); s != "" {
		if cfg.TraceState, err = trace.ParseTraceState(s); err != nil {
			return trace.SpanContext{}, err
		}
	}
	return trace.NewSpanContext(cfg), nil
}

// withParent is ctx with tc as its remote parent span; ctx as it is when
// tc is nil or unreadable.
func withParent(ctx context.Context, tc *protos.TraceContext) context.Context {
	sc, err := spanContextOf(tc)
	if err != nil {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// startCreateSpan starts the create_orchestration span of a request to
// create an instance; its trace context is the instance's
// ParentTraceContext.
func (e *Engine) startCreateSpan(ctx context.Context, req *protos.CreateInstanceRequest) (trace.Span, *protos.TraceContext) {
	if req.GetParentTraceContext() != nil {
		ctx = withParent(ctx, req.GetParentTraceContext())
	}
	_, span := e.tracer().Start(ctx, spanName("create_orchestration", req.GetName(), req.GetVersion().GetValue()),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("durabletask.type", "orchestration"),
			attribute.String("durabletask.task.name", req.GetName()),
			attribute.String("durabletask.task.instance_id", req.GetInstanceId())))
	return span, traceContext(span.SpanContext())
}

// chooseSpanID gives an instance that is about to run for the first time,
// and has a trace context, the ID of its orchestration span.
func chooseSpanID(inst *instance, start *protos.ExecutionStartedEvent) {
	if start == nil || start.GetParentTraceContext() == nil || start.GetWorkflowSpanID() != nil || len(inst.history) > 0 {
		return
	}
	start.WorkflowSpanID = wrap(spanid.Random().String())
}

// orchestrationTraceContext is the trace context of the instance's
// orchestration span, the parent of what it schedules; nil if it has none.
func orchestrationTraceContext(start *protos.ExecutionStartedEvent) *protos.TraceContext {
	sc, err := spanContextOf(start.GetParentTraceContext())
	if err != nil {
		return nil
	}
	id, err := trace.SpanIDFromHex(start.GetWorkflowSpanID().GetValue())
	if err != nil {
		return nil
	}
	return traceContext(sc.WithSpanID(id))
}

// endOrchestrationSpan exports the orchestration span of an instance
// whose generation ended (status: how), from began, its first run.
func (e *Engine) endOrchestrationSpan(start *protos.ExecutionStartedEvent, began time.Time, status protos.OrchestrationStatus, failure *protos.TaskFailureDetails) {
	if start == nil || start.GetParentTraceContext() == nil {
		return
	}
	id, err := trace.SpanIDFromHex(start.GetWorkflowSpanID().GetValue())
	if err != nil {
		return
	}
	ctx := spanid.With(withParent(context.Background(), start.GetParentTraceContext()), id)
	_, span := e.tracer().Start(ctx, spanName("orchestration", start.GetName(), start.GetVersion().GetValue()),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(began), trace.WithAttributes(
			attribute.String("durabletask.type", "orchestration"),
			attribute.String("durabletask.task.name", start.GetName()),
			attribute.String("durabletask.task.instance_id", start.GetWorkflowInstance().GetInstanceId()),
			attribute.String("durabletask.runtime_status", statusName(status))))
	if failure != nil {
		span.SetStatus(otelcodes.Error, failure.GetErrorMessage())
	}
	span.End()
}

// startActivitySpan starts the activity span of a run and makes it the
// parent the work item carries; end ends it, with the run's error.
func (e *Engine) startActivitySpan(ctx context.Context, req *protos.ActivityRequest) (end func(error)) {
	ctx = withParent(ctx, req.GetParentTraceContext())
	_, span := e.tracer().Start(ctx, spanName("activity", req.GetName(), req.GetVersion().GetValue()),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("durabletask.type", "activity"),
			attribute.String("durabletask.task.name", req.GetName()),
			attribute.Int64("durabletask.task.task_id", int64(req.GetTaskId())),
			attribute.String("durabletask.task.instance_id", req.GetWorkflowInstance().GetInstanceId())))
	if tc := traceContext(span.SpanContext()); tc != nil {
		req.ParentTraceContext = tc
	}
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End()
	}
}
