package workflow

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func scheduled(id int32, input string) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: "a", Input: wrap(input)}}}, id)
}

func taskDone(id int32) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: id}}}, -1)
}

func wfStarted() *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}}, -1)
}

// kinds names a list of events by type and event ID, e.g. "S0" (scheduled
// task 0), "D0" (task 0 done), "T1" (timer 1 created), "F1" (timer 1
// fired), "C2" (child 2 created), "E" (started), "W" (workflow started),
// "X3" (completed).
func kinds(evs []*protos.HistoryEvent) string {
	out := ""
	for _, e := range evs {
		switch {
		case e.GetTaskScheduled() != nil:
			out += fmt.Sprintf("S%d ", e.GetEventId())
		case e.GetTaskCompleted() != nil:
			out += fmt.Sprintf("D%d ", e.GetTaskCompleted().GetTaskScheduledId())
		case e.GetTimerCreated() != nil:
			out += fmt.Sprintf("T%d ", e.GetEventId())
		case e.GetTimerFired() != nil:
			out += fmt.Sprintf("F%d ", e.GetTimerFired().GetTimerId())
		case e.GetChildWorkflowInstanceCreated() != nil:
			out += fmt.Sprintf("C%d ", e.GetEventId())
		case e.GetExecutionStarted() != nil:
			out += "E "
		case e.GetWorkflowStarted() != nil:
			out += "W "
		case e.GetExecutionCompleted() != nil:
			out += fmt.Sprintf("X%d ", e.GetEventId())
		default:
			out += "? "
		}
	}
	return out
}

func TestForkHistory(t *testing.T) {
	timer := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{}}}, 2)
	fired := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: 2}}}, -1)
	child := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{InstanceId: "src:0004", Name: "c"}}}, 4)
	done := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{}}}, 5)
	// Tasks 0 and 1 scheduled together, 1 answered first; a timer that
	// fired; task 3 and child 4 scheduled together, never answered before
	// the end.
	history := []*protos.HistoryEvent{wfStarted(), started("w"), scheduled(0, `"a0"`), scheduled(1, `"a1"`), wfStarted(), taskDone(1),
		wfStarted(), taskDone(0), timer, wfStarted(), fired, scheduled(3, `"a3"`), child, wfStarted(), done}

	for _, tc := range []struct {
		name           string
		req            *protos.RerunWorkflowFromEventRequest
		history, inbox string
		code           codes.Code
		msg            string
	}{
		{name: "first task", req: &protos.RerunWorkflowFromEventRequest{EventID: 0}, history: "W E ", inbox: "S0 "},
		{name: "task scheduled with an earlier one", req: &protos.RerunWorkflowFromEventRequest{EventID: 1}, history: "W E ", inbox: "S0 S1 "},
		{name: "after a fired timer", req: &protos.RerunWorkflowFromEventRequest{EventID: 3},
			history: "W E W S1 D1 W S0 D0 W F2 ", inbox: "T2 S3 "},
		{name: "child", req: &protos.RerunWorkflowFromEventRequest{EventID: 4}, history: "W E W S1 D1 W S0 D0 W F2 ", inbox: "T2 S3 C4 "},
		{name: "timer", req: &protos.RerunWorkflowFromEventRequest{EventID: 2}, history: "W E W S1 D1 W S0 D0 ", inbox: "T2 "},
		{name: "no such event", req: &protos.RerunWorkflowFromEventRequest{EventID: 9}, code: codes.NotFound, msg: "does not have history event with ID '9'"},
		{name: "not a task", req: &protos.RerunWorkflowFromEventRequest{EventID: 5}, code: codes.NotFound,
			msg: "target event '*protos.HistoryEvent_ExecutionCompleted' with ID '5' is not an event that can be rerun"},
		{name: "input for a timer", req: &protos.RerunWorkflowFromEventRequest{EventID: 2, OverwriteInput: true}, code: codes.InvalidArgument,
			msg: "cannot write input to timer event '2'"},
		{name: "child ID for a task", req: &protos.RerunWorkflowFromEventRequest{EventID: 0, NewChildWorkflowInstanceID: new("x")}, code: codes.InvalidArgument,
			msg: "cannot set new child workflow instance ID on activity event '0'"},
		{name: "child ID for a timer", req: &protos.RerunWorkflowFromEventRequest{EventID: 2, NewChildWorkflowInstanceID: new("x")}, code: codes.InvalidArgument,
			msg: "cannot set new child workflow instance ID on timer event '2'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.NewInstanceID = new("dst")
			st, err := forkHistory("src", history, tc.req)
			if tc.code != codes.OK {
				if s, ok := status.FromError(err); !ok || s.Code() != tc.code || s.Message() != tc.msg {
					t.Fatalf("error %v, want %s %q", err, tc.code, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(st.GetHistory()); got != tc.history {
				t.Errorf("history %q, want %q", got, tc.history)
			}
			if got := kinds(st.GetInbox()); got != tc.inbox {
				t.Errorf("inbox %q, want %q", got, tc.inbox)
			}
			target := st.GetInbox()[len(st.GetInbox())-1]
			var rerunOf *protos.RerunParentInstanceInfo
			switch {
			case target.GetTaskScheduled() != nil:
				rerunOf = target.GetTaskScheduled().GetRerunParentInstanceInfo()
			case target.GetTimerCreated() != nil:
				rerunOf = target.GetTimerCreated().GetRerunParentInstanceInfo()
			case target.GetChildWorkflowInstanceCreated() != nil:
				rerunOf = target.GetChildWorkflowInstanceCreated().GetRerunParentInstanceInfo()
			}
			if rerunOf.GetInstanceID() != "src" {
				t.Errorf("target %v does not name its source", target)
			}
		})
	}
	if history[12].GetChildWorkflowInstanceCreated().GetInstanceId() != "src:0004" || history[2].GetTaskScheduled().GetRerunParentInstanceInfo() != nil {
		t.Error("forking changed the source's history")
	}
}

func TestForkHistoryInputs(t *testing.T) {
	child := func(id int32, childID string) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{
			InstanceId: childID, Name: "c", Input: wrap(`"old"`)}}}, id)
	}
	history := []*protos.HistoryEvent{wfStarted(), started("w"), scheduled(0, `"old"`), child(1, "custom"), child(2, "src:0002")}

	st, err := forkHistory("src", history, &protos.RerunWorkflowFromEventRequest{EventID: 0, NewInstanceID: new("dst"), OverwriteInput: true, Input: wrap(`"new"`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetInbox()[0].GetTaskScheduled().GetInput().GetValue(); got != `"new"` {
		t.Errorf("activity input %s", got)
	}
	st, err = forkHistory("src", history, &protos.RerunWorkflowFromEventRequest{EventID: 0, NewInstanceID: new("dst"), OverwriteInput: true})
	if err != nil {
		t.Fatal(err)
	}
	if in := st.GetInbox()[0].GetTaskScheduled().GetInput(); in != nil {
		t.Errorf("activity input %v overwritten with none", in)
	}

	// The target child and a pending one are renamed after the new
	// instance (or as asked); the target's input is overwritten.
	st, err = forkHistory("src", history, &protos.RerunWorkflowFromEventRequest{EventID: 2, NewInstanceID: new("dst"), OverwriteInput: true, Input: wrap(`"new"`)})
	if err != nil {
		t.Fatal(err)
	}
	pend, target := st.GetInbox()[1].GetChildWorkflowInstanceCreated(), st.GetInbox()[2].GetChildWorkflowInstanceCreated()
	if pend.GetInstanceId() != "dst:0001" || pend.GetInput().GetValue() != `"old"` || pend.GetRerunParentInstanceInfo() != nil {
		t.Errorf("pending child %v", pend)
	}
	if target.GetInstanceId() != "dst:0002" || target.GetInput().GetValue() != `"new"` {
		t.Errorf("target child %v", target)
	}
	st, err = forkHistory("src", history, &protos.RerunWorkflowFromEventRequest{EventID: 2, NewInstanceID: new("dst"), NewChildWorkflowInstanceID: new("mine")})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetInbox()[2].GetChildWorkflowInstanceCreated().GetInstanceId(); got != "mine" {
		t.Errorf("target child ID %s, want mine", got)
	}
}

func TestActorStatusErr(t *testing.T) {
	want := status.Error(codes.InvalidArgument, "'abc' is not in a terminal state")
	local := fmt.Errorf("dapr.internal.default.app.workflow||abc: %w", want)
	remote := errors.New("call actor on host 10.0.0.1:50002: dapr.internal.default.app.workflow||abc: " + want.Error())
	for _, err := range []error{local, remote} {
		got := actorStatusErr(err)
		if s, ok := status.FromError(got); !ok || s.Code() != codes.InvalidArgument || s.Message() != "'abc' is not in a terminal state" {
			t.Errorf("%v: got %v", err, got)
		}
		if !isStatus(got) {
			t.Errorf("%v: not a plain status error", got)
		}
	}
	if got := actorStatusErr(fmt.Errorf("x: %w", ErrNotFound)); !errors.Is(got, ErrNotFound) {
		t.Errorf("a sentinel error became %v", got)
	}
}
