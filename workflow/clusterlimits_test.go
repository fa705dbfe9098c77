package workflow

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/actors"
)

func TestActorTypes(t *testing.T) {
	e := New(Config{AppID: "app", Namespace: "ns"})
	wf, act := ActorTypes("ns", "app")
	if wf != e.WorkflowActorType() || act != e.ActivityActorType() {
		t.Fatalf("ActorTypes = %q, %q; the engine's are %q, %q", wf, act, e.WorkflowActorType(), e.ActivityActorType())
	}
	if wf, _ := ActorTypes("", "app"); wf != "dapr.internal.default.app.workflow" {
		t.Fatalf("no namespace: %q", wf)
	}
}

// waitReminder waits for a reminder of actorType whose name has prefix.
func waitReminder(t *testing.T, h *memHost, actorType, prefix string) actors.ReminderRequest {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, r := range h.reminders {
			if r.ActorType == actorType && strings.HasPrefix(r.Name, prefix) {
				h.mu.Unlock()
				return r
			}
		}
		h.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s reminder %s*", actorType, prefix)
	return actors.ReminderRequest{}
}

// reminderData is the data a reminder's trigger hands its actor.
func reminderData(t *testing.T, r actors.ReminderRequest) []byte {
	t.Helper()
	if r.Any == nil {
		return nil
	}
	data, err := proto.Marshal(r.Any)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fire delivers a reminder as the scheduler's trigger does, and forgets
// it (one shot).
func fire(t *testing.T, h *memHost, r actors.ReminderRequest) {
	t.Helper()
	data := reminderData(t, r)
	h.mu.Lock()
	delete(h.reminders, r.ActorType+"/"+r.ActorID+"/"+r.Name)
	h.mu.Unlock()
	if _, err := h.CallInternal(context.Background(), r.ActorType, r.ActorID, reminderPrefix+r.Name, data); err != nil {
		t.Fatalf("fire %s: %v", r.Name, err)
	}
}

// TestClusterLimitedRuns: under cluster-wide limits nothing runs until
// the scheduler fires the run's reminder, which carries the workflow's
// (or the activity's) name as its concurrency key and is due at once;
// the run happens inside that trigger, and the instance completes.
func TestClusterLimitedRuns(t *testing.T) {
	host := newMemHost()
	host.noFire = true // the test fires them
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour,
		ClusterLimits: ClusterLimits{Workflows: true, Activities: true}})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()

	answer := func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		for _, ev := range append(req.GetPastEvents(), req.GetNewEvents()...) {
			if ev.GetTaskCompleted() != nil {
				return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}
			}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "slow"}}}}}
	}
	ran := 0
	w, remove := e.workers.add()
	defer remove()
	serve := func() {
		t.Helper()
		select {
		case item := <-w.items:
			if a := item.GetActivityRequest(); a != nil {
				e.workers.complete("a|"+a.GetWorkflowInstance().GetInstanceId()+"|0", &protos.ActivityResponse{InstanceId: a.GetWorkflowInstance().GetInstanceId()})
				return
			}
			ran++
			req := item.GetWorkflowRequest()
			res := answer(req)
			res.InstanceId = req.GetInstanceId()
			e.workers.complete("o|"+req.GetInstanceId(), res)
		case <-time.After(10 * time.Second):
			t.Fatal("no work item")
		}
	}
	idle := func(what string) {
		t.Helper()
		select {
		case item := <-w.items:
			t.Fatalf("%s: work item %v dispatched before its reminder fired", what, item)
		case <-time.After(100 * time.Millisecond):
		}
	}

	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "wf", InstanceId: "i1"}); err != nil {
		t.Fatal(err)
	}
	idle("start")
	run := waitReminder(t, host, e.workflowType, limitedRunPrefix)
	if run.ActorID != "i1" || run.DueTime != "0s" || run.ConcurrencyKey == nil || *run.ConcurrencyKey != "wf" || run.FailurePolicy == nil {
		t.Fatalf("run reminder %+v (key %v), want one on i1 due at once keyed wf, retried", run, run.ConcurrencyKey)
	}
	done := make(chan struct{})
	go func() { defer close(done); fire(t, host, run) }()
	serve() // the first run, inside the trigger
	<-done

	act := waitReminder(t, host, e.activityType, runActivityReminder)
	if act.ActorID != activityActorID("i1", e.instances["i1"].generation, 0) || act.DueTime != "0s" || act.ConcurrencyKey == nil || *act.ConcurrencyKey != "slow" {
		t.Fatalf("run-activity reminder %+v (key %v), want one due at once keyed slow", act, act.ConcurrencyKey)
	}
	idle("activity scheduled")
	done = make(chan struct{})
	go func() { defer close(done); fire(t, host, act) }()
	serve() // the activity, inside its trigger
	<-done
	if _, ok := host.reminder(e.activityType, act.ActorID, runActivityReminder); ok {
		t.Fatal("the run-activity reminder was stored again after its run")
	}

	// The result's run waits for its own reminder.
	idle("result")
	run = waitReminder(t, host, e.workflowType, limitedRunPrefix)
	if *run.ConcurrencyKey != "wf" {
		t.Fatalf("second run keyed %q", *run.ConcurrencyKey)
	}
	done = make(chan struct{})
	go func() { defer close(done); fire(t, host, run) }()
	serve()
	<-done
	waitStatus(t, e, "i1", protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	if ran != 2 {
		t.Fatalf("the workflow ran %d times, want 2", ran)
	}
}
