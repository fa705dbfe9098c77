package workflow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

func ev(e *protos.HistoryEvent, id int32) *protos.HistoryEvent {
	e = stamp(e)
	e.EventId = id
	return e
}

func started(name string) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: &protos.ExecutionStartedEvent{
		Name: name, WorkflowInstance: &protos.WorkflowInstance{InstanceId: "i", ExecutionId: wrap("x")}}}}, -1)
}

func TestStateStatus(t *testing.T) {
	wfStarted := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}}, -1)
	suspended := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionSuspended{ExecutionSuspended: &protos.ExecutionSuspendedEvent{}}}, -1)
	resumed := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionResumed{ExecutionResumed: &protos.ExecutionResumedEvent{}}}, -1)
	done := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED}}}, 3)
	for _, tc := range []struct {
		name           string
		history, inbox []*protos.HistoryEvent
		want           string
	}{
		{"queued", nil, []*protos.HistoryEvent{started("w")}, "PENDING"},
		{"ran", []*protos.HistoryEvent{wfStarted, started("w")}, nil, "RUNNING"},
		{"suspended", []*protos.HistoryEvent{wfStarted, started("w"), wfStarted, suspended}, nil, "SUSPENDED"},
		{"resumed", []*protos.HistoryEvent{wfStarted, started("w"), suspended, resumed}, nil, "RUNNING"},
		{"failed", []*protos.HistoryEvent{wfStarted, started("w"), done}, nil, "FAILED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := &instance{id: "i", exists: true, history: tc.history, inbox: tc.inbox}
			st := inst.state()
			if got := StatusName(st.GetWorkflowStatus()); got != tc.want || st.GetName() != "w" {
				t.Errorf("status %s name %q, want %s w", got, st.GetName(), tc.want)
			}
		})
	}
}

func TestWaitsFor(t *testing.T) {
	scheduled := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: "a"}}}, 0)
	timer := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{}}}, 1)
	completed := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: id}}}, -1)
	}
	fired := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: 1}}}, -1)
	inst := &instance{history: []*protos.HistoryEvent{started("w"), scheduled, timer}}
	if !inst.waitsFor(completed(0), 0) {
		t.Error("the scheduled task's result is refused")
	}
	if inst.waitsFor(completed(1), 1) {
		t.Error("a task result for a timer is accepted")
	}
	if inst.waitsFor(completed(7), 7) {
		t.Error("a result for a task never scheduled is accepted")
	}
	if !inst.waitsFor(fired, 1) {
		t.Error("the timer's firing is refused")
	}
	inst.inbox = []*protos.HistoryEvent{completed(0)}
	if inst.waitsFor(completed(0), 0) {
		t.Error("a second result for one task is accepted")
	}
}

func TestWorkersRedispatchOnDisconnect(t *testing.T) {
	ws := newWorkers()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ws.dispatch(ctx, "k", &protos.WorkItem{}, 10*time.Millisecond); !errors.Is(err, errNoWorker) {
		t.Fatalf("dispatch without a worker: %v", err)
	}
	first, removeFirst := ws.add()
	type result struct {
		msg proto.Message
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := ws.dispatch(ctx, "k", &protos.WorkItem{CompletionToken: "t"}, -1)
		got <- result{m, err}
	}()
	<-first.items // taken, then the worker goes away unanswered
	second, removeSecond := ws.add()
	defer removeSecond()
	removeFirst()
	item := <-second.items
	if item.GetCompletionToken() != "t" {
		t.Fatalf("redispatched item %v", item)
	}
	if !ws.complete("k", &protos.ActivityResponse{TaskId: 4}) {
		t.Fatal("nothing waited for the answer")
	}
	r := <-got
	if r.err != nil || r.msg.(*protos.ActivityResponse).GetTaskId() != 4 {
		t.Fatalf("dispatch: %v %v", r.msg, r.err)
	}
	if ws.complete("k", &protos.ActivityResponse{}) {
		t.Error("a second answer was delivered")
	}
}

// FuzzState: any stored history event decodes to a state without panic.
func FuzzState(f *testing.F) {
	f.Add(mustMarshal(started("w")))
	f.Add(mustMarshal(ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{}}}, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := new(protos.HistoryEvent)
		if unmarshal(b, e) != nil {
			return
		}
		inst := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{started("w"), e}, inbox: []*protos.HistoryEvent{e}}
		_ = inst.state()
		if id, ok := answerTo(e); ok {
			_ = inst.waitsFor(e, id)
		}
		_ = inst.runningChildren()
	})
}

// TestPendingTimers: the reminders an ended instance leaves behind are its
// unfired timers, named as daprd names them.
func TestPendingTimers(t *testing.T) {
	timer := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerCreated{TimerCreated: &protos.TimerCreatedEvent{}}}, id)
	}
	fired := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TimerFired{TimerFired: &protos.TimerFiredEvent{TimerId: 0}}}, -1)
	inst := &instance{history: []*protos.HistoryEvent{started("w"), timer(0), timer(2), fired}}
	if got := inst.pendingTimers(); len(got) != 1 || got[0] != "timer-2" {
		t.Errorf("pending timers = %q, want [timer-2]", got)
	}
}

// TestTimerCreatedOrigin: a timer's origin reaches its history event.
func TestTimerCreatedOrigin(t *testing.T) {
	a := &protos.CreateTimerAction{Origin: &protos.CreateTimerAction_ActivityRetry{ActivityRetry: &protos.TimerOriginActivityRetry{TaskExecutionId: "x"}}}
	if got := timerCreated(a).GetActivityRetry().GetTaskExecutionId(); got != "x" {
		t.Errorf("activity retry origin lost: %q", got)
	}
	e := &protos.CreateTimerAction{Origin: &protos.CreateTimerAction_ExternalEvent{ExternalEvent: &protos.TimerOriginExternalEvent{Name: "ev"}}}
	if got := timerCreated(e).GetExternalEvent().GetName(); got != "ev" {
		t.Errorf("external event origin lost: %q", got)
	}
}

// TestNextGeneration: as daprd counts, a re-created instance counts on and
// one with no state (new or purged) starts at 1.
func TestNextGeneration(t *testing.T) {
	if got := nextGeneration(&instance{exists: true, generation: 4}); got != 5 {
		t.Errorf("re-created: generation %d, want 5", got)
	}
	if got := nextGeneration(&instance{generation: 7}); got != 1 {
		t.Errorf("no state: generation %d, want 1", got)
	}
}

// TestDuplicateAnswer: an answer to a task, child or timer already
// answered (in history or inbox; completed and failed alike) is a
// duplicate, named by daprd's wake-up reminder; a first answer is not.
func TestDuplicateAnswer(t *testing.T) {
	failed := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{TaskScheduledId: id}}}, -1)
	}
	childDone := func(id int32) *protos.HistoryEvent {
		return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{TaskScheduledId: id}}}, -1)
	}
	inst := &instance{history: []*protos.HistoryEvent{started("w"), scheduled(0, ""), scheduled(1, ""), taskDone(0)}, inbox: []*protos.HistoryEvent{failed(1)}}
	for _, tc := range []struct {
		name string
		ev   *protos.HistoryEvent
		want string
	}{
		{"answered in history", taskDone(0), "new-event-tc-0"},
		{"failed after completed", failed(0), "new-event-tf-0"},
		{"answered in inbox", taskDone(1), "new-event-tc-1"},
		{"first answer", taskDone(2), ""},
		{"child is another family", childDone(0), ""},
		{"not an answer", raised("x"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, dup := inst.duplicateAnswer(tc.ev)
			if dup != (tc.want != "") || name != tc.want {
				t.Errorf("duplicateAnswer = %q, %v; want %q", name, dup, tc.want)
			}
		})
	}
}
