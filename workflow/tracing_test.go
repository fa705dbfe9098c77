package workflow

import (
	"context"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandemrun/tandem/internal/spanid"
)

func TestSpanContextOf(t *testing.T) {
	w3c := &protos.TraceContext{TraceParent: "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01", TraceState: wrap("k=v")}
	sc, err := spanContextOf(w3c)
	if err != nil || sc.TraceID().String() != "0102030405060708090a0b0c0d0e0f10" || sc.SpanID().String() != "1112131415161718" ||
		!sc.IsSampled() || sc.TraceState().Get("k") != "v" {
		t.Fatalf("W3C: %v, %v", sc, err)
	}
	if back := traceContext(sc); back.GetTraceParent() != w3c.GetTraceParent() || back.GetTraceState().GetValue() != "k=v" {
		t.Fatalf("round trip: %v", back)
	}
	// The SDKs' older form is sampled.
	//lint:ignore SA1019 the older form is what this case sends
	legacy := &protos.TraceContext{TraceParent: "0102030405060708090a0b0c0d0e0f10", SpanID: "1112131415161718"}
	if sc, err := spanContextOf(legacy); err != nil || !sc.IsSampled() || sc.SpanID().String() != "1112131415161718" {
		t.Fatalf("legacy: %v, %v", sc, err)
	}
	for _, bad := range []*protos.TraceContext{nil, {TraceParent: "00-zz-11-01"}, {TraceParent: "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-x"}} {
		if _, err := spanContextOf(bad); err == nil {
			t.Errorf("%v read", bad)
		}
	}
	unsampled, _ := spanContextOf(&protos.TraceContext{TraceParent: "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-00"})
	if traceContext(unsampled) != nil {
		t.Error("an unsampled context is passed on")
	}
}

// TestWorkflowSpans: an instance created with the client's trace context
// records create_orchestration under it, its orchestration span (exported
// at its end, with the ID its activity named as parent) under that, and
// the activity's span under the orchestration; the activity's work item
// carries the activity span as the app's parent.
func TestWorkflowSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spanid.Generator()), sdktrace.WithSpanProcessor(rec))
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host, WatchdogPeriod: time.Hour, Tracer: tp.Tracer("durabletask")})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()

	w, remove := e.workers.add()
	defer remove()
	var activityParent *protos.TraceContext
	go func() {
		for item := range w.items {
			if a := item.GetActivityRequest(); a != nil {
				activityParent = a.GetParentTraceContext()
				e.workers.complete("a|i1|0", &protos.ActivityResponse{InstanceId: "i1"})
				continue
			}
			req := item.GetWorkflowRequest()
			action := &protos.WorkflowAction{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "bar"}}}
			for _, ev := range append(req.GetPastEvents(), req.GetNewEvents()...) {
				if ev.GetTaskCompleted() != nil {
					action = &protos.WorkflowAction{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
						CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}
				}
			}
			e.workers.complete("o|"+req.GetInstanceId(), &protos.WorkflowResponse{InstanceId: req.GetInstanceId(), Actions: []*protos.WorkflowAction{action}})
		}
	}()

	//lint:ignore SA1019 the older form is what this case sends
	client := &protos.TraceContext{TraceParent: "0102030405060708090a0b0c0d0e0f10", SpanID: "1112131415161718"}
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "foo", InstanceId: "i1", ParentTraceContext: client}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "i1", protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)

	// The orchestration span ends just after the end is saved.
	spans := map[string]sdktrace.ReadOnlySpan{}
	for deadline := time.Now().Add(5 * time.Second); len(spans) < 3 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		clear(spans)
		for _, s := range rec.Ended() {
			spans[s.Name()] = s
		}
	}
	create, orch, act := spans["create_orchestration||foo"], spans["orchestration||foo"], spans["activity||bar"]
	if create == nil || orch == nil || act == nil || len(spans) != 3 {
		t.Fatalf("spans %v, want create_orchestration||foo, orchestration||foo, activity||bar", keys(spans))
	}
	traceID := create.SpanContext().TraceID().String()
	if traceID != "0102030405060708090a0b0c0d0e0f10" || create.Parent().SpanID().String() != "1112131415161718" {
		t.Fatalf("create_orchestration in trace %s under %v, want the client's", traceID, create.Parent().SpanID())
	}
	if orch.Parent().SpanID() != create.SpanContext().SpanID() || orch.SpanKind() != trace.SpanKindServer {
		t.Fatalf("orchestration under %v, want the create span %v", orch.Parent().SpanID(), create.SpanContext().SpanID())
	}
	if act.Parent().SpanID() != orch.SpanContext().SpanID() || act.SpanContext().TraceID().String() != traceID {
		t.Fatalf("activity under %v, want the orchestration span %v", act.Parent().SpanID(), orch.SpanContext().SpanID())
	}
	if !orch.StartTime().Before(act.StartTime()) || orch.StartTime().Before(create.StartTime()) {
		t.Fatalf("start times: create %v, orchestration %v, activity %v", create.StartTime(), orch.StartTime(), act.StartTime())
	}
	if sc, err := spanContextOf(activityParent); err != nil || sc.SpanID() != act.SpanContext().SpanID() {
		t.Fatalf("activity work item's parent %v, want the activity span", activityParent)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
