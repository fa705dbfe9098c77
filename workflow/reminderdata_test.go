package workflow

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func legacyAny(t *testing.T, v any) *anypb.Any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return mustAny(wrapperspb.Bytes(b))
}

// daprdTimer is a timer reminder's data as daprd 1.18 makes it (its
// applier's pending TimerFired event).
func daprdTimer(gen uint64, id int32, at time.Time) *anypb.Any {
	return mustAny(&protos.DurableTimer{Generation: gen, TimerEvent: &protos.HistoryEvent{
		EventId: -1, Timestamp: timestamppb.Now(),
		EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: id, FireAt: timestamppb.New(at)}},
	}})
}

func TestReadTimer(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := timerData{Generation: 7, ID: 3, FireAt: at}
	for _, tc := range []struct {
		name    string
		data    *anypb.Any
		ok, bad bool
	}{
		{"daprd's", daprdTimer(7, 3, at), true, false},
		{"ours", timerAny(want), true, false},
		{"an earlier Tandem's JSON", legacyAny(t, want), true, false},
		{"none (daprd's start)", nil, false, false},
		{"not a timer", mustAny(wrapperspb.String("x")), false, true},
		{"another event", mustAny(&protos.DurableTimer{Generation: 7, TimerEvent: started("w")}), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := readTimer(tc.data)
			if (err != nil) != tc.bad || ok != tc.ok {
				t.Fatalf("readTimer: ok %v err %v; want ok %v, error %v", ok, err, tc.ok, tc.bad)
			}
			if ok && (got.Generation != want.Generation || got.ID != want.ID || !got.FireAt.Equal(at)) {
				t.Errorf("readTimer = %+v, want %+v", got, want)
			}
		})
	}
}

func TestReadInvocationAndEvent(t *testing.T) {
	req := &protos.ActivityRequest{Name: "act", Input: wrapperspb.String("in"), TaskId: 4}
	router := &protos.TaskRouter{SourceAppID: "app"}
	inv := activityInvocation(req, router)
	for name, data := range map[string]*anypb.Any{
		"ActivityInvocation":       mustAny(inv),
		"older daprd's event":      mustAny(inv.GetHistoryEvent()),
		"an earlier Tandem's JSON": legacyAny(t, encodeActivity(req, router)),
	} {
		b, err := readInvocation(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, gotRouter, err := decodeActivity("i::4::1", b)
		if err != nil || got.GetName() != "act" || got.GetTaskId() != 4 || got.GetInput().GetValue() != "in" || gotRouter.GetSourceAppID() != "app" {
			t.Errorf("%s: decoded %v %v (%v)", name, got, gotRouter, err)
		}
	}
	if _, err := readInvocation(mustAny(wrapperspb.String("x"))); err == nil {
		t.Error("a run-activity reminder of another type is read")
	}
	done := taskDone(4)
	for name, data := range map[string]*anypb.Any{"HistoryEvent": mustAny(done), "an earlier Tandem's JSON": legacyAny(t, mustMarshal(done))} {
		b, err := readEvent(data)
		got := new(protos.HistoryEvent)
		if err == nil {
			err = proto.Unmarshal(b, got)
		}
		if err != nil || !proto.Equal(got, done) {
			t.Errorf("%s: %v (%v)", name, got, err)
		}
	}
}

// TestTimerReminderLayout: a durable timer's reminder carries daprd's
// DurableTimer, retried every second as daprd's; it fires the timer when
// daprd made its data and when an earlier Tandem did (JSON).
func TestTimerReminderLayout(t *testing.T) {
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	fireAt := time.Now().Add(time.Hour).UTC()
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		for _, ev := range append(req.GetPastEvents(), req.GetNewEvents()...) {
			if ev.GetTimerFired() != nil {
				return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}
			}
		}
		if len(req.GetPastEvents()) > 0 {
			return &protos.WorkflowResponse{}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_CreateTimer{
			CreateTimer: &protos.CreateTimerAction{FireAt: timestamppb.New(fireAt)}}}}}
	})
	defer stop()
	for _, tc := range []struct {
		id   string
		data func(gen uint64) *anypb.Any
	}{
		{"daprd", func(gen uint64) *anypb.Any { return daprdTimer(gen, 0, fireAt) }},
		{"legacy", func(gen uint64) *anypb.Any { return legacyAny(t, timerData{Generation: gen, FireAt: fireAt}) }},
	} {
		t.Run(tc.id, func(t *testing.T) {
			if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: tc.id}); err != nil {
				t.Fatal(err)
			}
			var rem, ok = host.reminder(e.workflowType, tc.id, "timer-0")
			for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); rem, ok = host.reminder(e.workflowType, tc.id, "timer-0") {
				time.Sleep(10 * time.Millisecond)
			}
			if !ok {
				t.Fatal("no timer-0 reminder stored")
			}
			inst, err := e.load(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := readTimer(rem.Any)
			if err != nil || !ok || !rem.Any.MessageIs(&protos.DurableTimer{}) || got.Generation != inst.generation || got.ID != 0 || !got.FireAt.Equal(fireAt) {
				t.Fatalf("timer-0 data %v: %+v %v %v; want a DurableTimer of generation %d firing at %s", rem.Any.GetTypeUrl(), got, ok, err, inst.generation, fireAt)
			}
			if rem.Data != nil || rem.FailurePolicy.GetConstant().GetInterval().AsDuration() != time.Second || rem.FailurePolicy.GetConstant().MaxRetries != nil {
				t.Errorf("timer-0: data %q, failure policy %v; want none and daprd's (every second, forever)", rem.Data, rem.FailurePolicy)
			}
			data, _ := proto.Marshal(tc.data(inst.generation))
			if _, err := host.CallInternal(ctx, e.workflowType, tc.id, "remind/timer-0", data); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, e, tc.id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
		})
	}
}

// The run-activity reminder an activity actor stores from its call's
// bytes is the Any daprd stores: anypb.New's, read back by readInvocation.
func TestInvocationAny(t *testing.T) {
	inv := activityInvocation(&protos.ActivityRequest{Name: "act", TaskId: 3,
		WorkflowInstance: &protos.WorkflowInstance{InstanceId: "i"}}, &protos.TaskRouter{SourceAppID: "app"})
	want, err := anypb.New(inv)
	if err != nil {
		t.Fatal(err)
	}
	got := invocationAny(mustMarshal(inv))
	if !proto.Equal(got, want) {
		t.Fatalf("invocationAny = %v, want %v", got, want)
	}
	back, err := readInvocation(got)
	if err != nil {
		t.Fatal(err)
	}
	req, router, err := decodeActivity(activityActorID("i", 1, 3), back)
	if err != nil || req.GetName() != "act" || req.GetTaskId() != 3 || router.GetSourceAppID() != "app" {
		t.Fatalf("decodeActivity = %v, %v, %v", req, router, err)
	}
}
