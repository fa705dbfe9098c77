package workflow

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestContinueAsNewDropsScheduled: activities a run schedules before it
// continues as new are never run; the new generation runs to its end.
func TestContinueAsNewDropsScheduled(t *testing.T) {
	e := New(Config{AppID: "app", Actors: newMemHost()})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	activities.Store(0)
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		var input string
		for _, ev := range req.GetNewEvents() {
			if s := ev.GetExecutionStarted(); s != nil {
				input = s.GetInput().GetValue()
			}
		}
		if input == "second" {
			return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
				CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}
		}
		var actions []*protos.WorkflowAction
		for i := range 3 {
			actions = append(actions, &protos.WorkflowAction{Id: int32(i), WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
				ScheduleTask: &protos.ScheduleTaskAction{Name: "bar"}}})
		}
		actions = append(actions, &protos.WorkflowAction{Id: 3, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW, Result: wrapperspb.String("second")}}})
		return &protos.WorkflowResponse{Actions: actions}
	})
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "can", Input: wrapperspb.String("first")})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	e.bg.Wait()
	if n := activities.Load(); n != 0 {
		t.Errorf("%d activities ran, want 0: the old generation's are dropped", n)
	}
}

// TestPendingBeforeRun: an ending run cancels only the activities earlier
// runs scheduled.
func TestPendingBeforeRun(t *testing.T) {
	inst := &instance{id: "i", generation: 1, history: []*protos.HistoryEvent{
		wfStarted(), started("w"), scheduled(0, ""), scheduled(1, ""), wfStarted(), taskDone(0), scheduled(2, ""),
	}}
	got := inst.pendingBeforeRun()
	if len(got) != 1 || got[0] != activityActorID("i", 1, 1) {
		t.Errorf("cancelled %v, want only task 1's run", got)
	}
}

// TestEndLast: a run's end is applied after its other actions, whatever
// order the SDK sent them in; a continue-as-new keeps its place.
func TestEndLast(t *testing.T) {
	end := &protos.WorkflowAction{Id: 2, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}
	can := &protos.WorkflowAction{Id: 3, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW}}}
	child := &protos.WorkflowAction{Id: 0, WorkflowActionType: &protos.WorkflowAction_CreateChildWorkflow{CreateChildWorkflow: &protos.CreateChildWorkflowAction{Name: "c"}}}
	task := &protos.WorkflowAction{Id: 1, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "a"}}}
	ids := func(as []*protos.WorkflowAction) (out []int32) {
		for _, a := range as {
			out = append(out, a.GetId())
		}
		return out
	}
	for _, tc := range []struct {
		in   []*protos.WorkflowAction
		want []int32
	}{
		{[]*protos.WorkflowAction{end, child, task}, []int32{0, 1, 2}},
		{[]*protos.WorkflowAction{child, end, task}, []int32{0, 1, 2}},
		{[]*protos.WorkflowAction{can, child}, []int32{3, 0}},
	} {
		if got := ids(endLast(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("endLast(%v) = %v, want %v", ids(tc.in), got, tc.want)
		}
	}
}

// TestEndingRunCreatesChild: a child created in the run that ends the
// instance is created even when the SDK sends the end first.
func TestEndingRunCreatesChild(t *testing.T) {
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		if req.GetInstanceId() != "p" {
			return &protos.WorkflowResponse{}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{
			{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
				WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}},
			{Id: 0, WorkflowActionType: &protos.WorkflowAction_CreateChildWorkflow{CreateChildWorkflow: &protos.CreateChildWorkflowAction{Name: "child", InstanceId: "c"}}},
		}}
	})
	defer stop()
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "parent", InstanceId: "p"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "p", protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	waitStatus(t, e, "c", protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
}

// TestGenerationPerTurn: as daprd, an instance starts at generation 1 and
// its generation goes up once per turn in which it continued as new, not
// once per continuation: five in a row run in one turn (2), and 25 take
// two turns of at most maxContinuesPerTurn (3).
func TestGenerationPerTurn(t *testing.T) {
	e := New(Config{AppID: "app", Actors: newMemHost()})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	var runs atomic.Int32
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		runs.Add(1)
		var input, limit int
		for _, ev := range req.GetNewEvents() {
			if s := ev.GetExecutionStarted(); s != nil {
				_, _ = fmt.Sscanf(s.GetInput().GetValue(), "%d/%d", &input, &limit)
			}
		}
		if input < limit {
			return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
				CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
					Result: wrapperspb.String(fmt.Sprintf("%d/%d", input+1, limit))}}}}}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
			CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}
	})
	defer stop()
	for _, c := range []struct {
		continues int
		want      uint64
	}{{0, 1}, {5, 2}, {25, 3}} {
		runs.Store(0)
		id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: fmt.Sprintf("gen-%d", c.continues), Input: wrapperspb.String(fmt.Sprintf("0/%d", c.continues))})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
		if n := runs.Load(); n != int32(c.continues+1) {
			t.Errorf("%d continues: the workflow ran %d times, want %d", c.continues, n, c.continues+1)
		}
		inst, err := e.load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if inst.generation != c.want {
			t.Errorf("%d continues: generation %d, want %d", c.continues, inst.generation, c.want)
		}
	}
}

// TestPurgedRecreatedActivityRuns: an instance purged and created again
// starts at generation 1 once more, so its activity runs have the actor
// IDs of the purged one's; they still run (the host remembers a run as
// done for its instance's execution only).
func TestPurgedRecreatedActivityRuns(t *testing.T) {
	e := New(Config{AppID: "app", Actors: newMemHost()})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	activities.Store(0)
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		for _, ev := range req.GetNewEvents() {
			if ev.GetTaskCompleted() != nil {
				return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}
			}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "a", TaskExecutionId: req.GetExecutionId().GetValue()}}}}}
	})
	defer stop()
	for round := 1; round <= 2; round++ {
		if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "again"}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e, "again", protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
		if n := activities.Load(); n != int64(round) {
			t.Fatalf("round %d: %d activity runs, want %d", round, n, round)
		}
		if deleted, err := e.Purge(ctx, "again", false); err != nil || !deleted {
			t.Fatalf("purge: %v, %v", deleted, err)
		}
	}
}
