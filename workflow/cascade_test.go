package workflow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestCascadeTerminateReminders: a recursive terminate reaches the
// children of this app as cascade-terminate reminders carrying the
// terminate event, stored once the scheduler takes them (the parent tries
// again meanwhile); each child ends when its reminder fires.
func TestCascadeTerminateReminders(t *testing.T) {
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	children := []string{"c0", "c1"}
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		for _, ev := range req.GetNewEvents() {
			if ev.GetExecutionTerminated() != nil {
				return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 9, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED}}}}}
			}
		}
		if req.GetInstanceId() != "p" || len(req.GetPastEvents()) > 0 {
			return &protos.WorkflowResponse{}
		}
		var actions []*protos.WorkflowAction
		for i, c := range children {
			actions = append(actions, &protos.WorkflowAction{Id: int32(i), WorkflowActionType: &protos.WorkflowAction_CreateChildWorkflow{
				CreateChildWorkflow: &protos.CreateChildWorkflowAction{Name: "child", InstanceId: c}}})
		}
		return &protos.WorkflowResponse{Actions: actions}
	})
	defer stop()
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "parent", InstanceId: "p"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		waitStatus(t, e, c, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	}

	setRemindErr := func(err error) {
		host.mu.Lock()
		host.remindErr = err
		host.mu.Unlock()
	}
	setRemindErr(errors.New("scheduler unavailable"))
	if err := e.Terminate(ctx, "p", wrapperspb.String("stop"), true); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "p", protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED)
	time.Sleep(300 * time.Millisecond) // a few failed tries
	for _, c := range children {
		if _, ok := host.reminder(e.workflowType, c, cascadeTerminateName); ok {
			t.Fatalf("child %s has a cascade reminder while the scheduler refuses them", c)
		}
	}
	setRemindErr(nil)

	for _, c := range children {
		var data []byte
		deadline := time.Now().Add(10 * time.Second)
		for {
			if r, ok := host.reminder(e.workflowType, c, cascadeTerminateName); ok {
				data = mustMarshal(r.Any)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("child %s never got its cascade-terminate reminder", c)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := host.CallInternal(ctx, e.workflowType, c, reminderPrefix+cascadeTerminateName, data); err != nil {
			t.Fatalf("fire %s's reminder: %v", c, err)
		}
		waitStatus(t, e, c, protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED)
		hist, _ := e.History(ctx, c)
		var term *protos.ExecutionTerminatedEvent
		for _, h := range hist {
			if x := h.GetExecutionTerminated(); x != nil {
				term = x
			}
		}
		if !term.GetRecurse() || term.GetInput().GetValue() != "stop" {
			t.Errorf("child %s ended by %v, want the parent's recursive terminate with its reason", c, term)
		}
	}
}
