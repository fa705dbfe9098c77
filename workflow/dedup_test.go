package workflow

import (
	"context"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
)

func TestFreshEvents(t *testing.T) {
	taskFailed := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{TaskScheduledId: id}}}, -1)
	}
	timer := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{}}}, 1)
	fired := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: id}}}, -1)
	}
	child := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{InstanceId: "c"}}}, 2)
	childDone := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{TaskScheduledId: id}}}, -1)
	}
	raised := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: "done"}}}, -1)
	running := []*protos.HistoryEvent{wfStarted(), started("w"), scheduled(0, ""), timer, child}

	for _, tc := range []struct {
		name           string
		history, inbox []*protos.HistoryEvent
		want           string
	}{
		{"a new instance's start", nil, []*protos.HistoryEvent{started("w")}, "E "},
		{"answers to what is scheduled", running, []*protos.HistoryEvent{taskDone(0), fired(1), childDone(2)}, "D0 F1 ? "},
		{"a task answered in the history", append(running, taskDone(0)), []*protos.HistoryEvent{taskDone(0), raised}, "? "},
		{"a failure after the completion", append(running, taskDone(0)), []*protos.HistoryEvent{taskFailed(0)}, ""},
		{"a timer fired in the history", append(running, fired(1)), []*protos.HistoryEvent{fired(1)}, ""},
		{"a child answered in the history", append(running, childDone(2)), []*protos.HistoryEvent{childDone(2)}, ""},
		{"the same answer twice in the inbox", running, []*protos.HistoryEvent{taskDone(0), taskDone(0)}, "D0 "},
		{"a task ID and a timer ID are apart", append(running, fired(0)), []*protos.HistoryEvent{taskDone(0)}, "D0 "},
		{"an answer to a task never scheduled", running, []*protos.HistoryEvent{taskDone(7), childDone(0)}, ""},
		{"a second start", running, []*protos.HistoryEvent{started("w"), raised}, "? "},
		{"events are not answers", running, []*protos.HistoryEvent{raised, raised}, "? ? "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kinds(freshEvents(tc.history, tc.inbox)); got != tc.want {
				t.Fatalf("fresh %q, want %q", got, tc.want)
			}
		})
	}
}

// TestResolvedTaskIsNotRunAgain: a history that has a task's answer but
// lost its scheduling records the scheduling the worker asks for again,
// and the activity does not run again.
func TestResolvedTaskIsNotRunAgain(t *testing.T) {
	e := New(Config{AppID: "app", Actors: newMemHost()})
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	e.ctx = stopped
	start := started("w")
	inst := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStarted(), start, wfStarted(), taskDone(0)}}
	schedule := func(id int32) *protos.WorkflowAction {
		return &protos.WorkflowAction{Id: id, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "a"}}}
	}
	if post, _ := e.apply(inst, start.GetExecutionStarted(), schedule(0)); post != nil {
		t.Error("an answered task is run again")
	}
	if got := kinds(inst.history); got != "W E W D0 S0 " {
		t.Errorf("history %q: the scheduling is not recorded", got)
	}
	if post, _ := e.apply(inst, start.GetExecutionStarted(), schedule(1)); post == nil {
		t.Error("a new task is not run")
	}
}
