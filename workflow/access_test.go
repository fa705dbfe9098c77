package workflow

import (
	"context"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/workflow/wfacl"
)

func TestAccessChecks(t *testing.T) {
	ps, err := wfacl.Parse([]byte(`
kind: WorkflowAccessPolicy
metadata: {name: p}
spec:
  rules:
  - callers: [{appID: caller}]
    workflows: [{name: Allowed, operations: [schedule, terminate]}]
    activities: [{name: act}]
`))
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := wfacl.Compile(ps, "target")
	var current *wfacl.Policies
	e := New(Config{AppID: "target", AccessPolicy: func() *wfacl.Policies { return current }})
	create := func(name string) []byte {
		return mustMarshal(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: &protos.ExecutionStartedEvent{Name: name}}})
	}
	raise := mustMarshal(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: "x"}}})
	terminate := mustMarshal(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionTerminated{ExecutionTerminated: &protos.ExecutionTerminatedEvent{}}})
	result := mustMarshal(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{}}})
	running := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{started("Allowed")}}
	fresh := &instance{id: "j"}
	fromCaller := actors.ContextWithCaller(context.Background(), "caller")
	fromOther := actors.ContextWithCaller(context.Background(), "other")
	fromSelf := actors.ContextWithCaller(context.Background(), "target")
	local := context.Background()

	// No policy: all allowed.
	if err := e.checkWorkflowCall(fromOther, fresh, methodCreate, create("Denied")); err != nil {
		t.Errorf("no policy: %v", err)
	}
	current = policy
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		inst   *instance
		method string
		data   []byte
		ok     bool
	}{
		{"allowed schedule", fromCaller, fresh, methodCreate, create("Allowed"), true},
		{"other workflow", fromCaller, fresh, methodCreate, create("Denied"), false},
		{"other caller", fromOther, fresh, methodCreate, create("Allowed"), false},
		{"self", fromSelf, fresh, methodCreate, create("Denied"), true},
		{"local", local, fresh, methodCreate, create("Denied"), true},
		{"terminate allowed", fromCaller, running, methodAddEvent, terminate, true},
		{"raise not granted", fromCaller, running, methodAddEvent, raise, false},
		{"result events are not an operation", fromCaller, running, methodAddEvent, result, false},
		{"purge not granted", fromCaller, running, methodPurge, []byte{0}, false},
		{"internal method", fromCaller, running, methodRun, nil, false},
		{"malformed create", fromCaller, fresh, methodCreate, []byte{0xff}, false},
	} {
		err := e.checkWorkflowCall(tc.ctx, tc.inst, tc.method, tc.data)
		if (err == nil) != tc.ok || (err != nil && !denied(err)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	act := func(name string) []byte {
		return encodeActivity(&protos.ActivityRequest{Name: name, TaskId: 1}, &protos.TaskRouter{SourceAppID: "caller"})
	}
	if err := e.checkActivityCall(fromCaller, "i::1::1", methodExecute, act("act")); err != nil {
		t.Errorf("allowed activity: %v", err)
	}
	if err := e.checkActivityCall(fromCaller, "i::1::1", methodExecute, act("other")); !denied(err) {
		t.Errorf("activity not granted: %v", err)
	}
	if err := e.checkActivityCall(fromCaller, "i::1::1", reminderPrefix+runActivityReminder, nil); !denied(err) {
		t.Errorf("a remote call of the run-activity reminder: %v", err)
	}
	if err := e.checkActivityCall(local, "i::1::1", methodExecute, act("other")); err != nil {
		t.Errorf("local activity: %v", err)
	}
}

func TestStartEventFormats(t *testing.T) {
	es := &protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: &protos.ExecutionStartedEvent{Name: "w"}}}
	for name, data := range map[string][]byte{
		"bare":    mustMarshal(es),
		"request": mustMarshal(&protos.CreateWorkflowInstanceRequest{StartEvent: es}),
	} {
		ev, ok := startEvent(data)
		if !ok || ev.GetExecutionStarted().GetName() != "w" {
			t.Errorf("%s: %v %v", name, ev, ok)
		}
	}
	for name, data := range map[string][]byte{
		"raised": mustMarshal(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{}}}),
		"empty":  {},
		"junk":   {0xff, 0x01},
	} {
		if _, ok := startEvent(data); ok {
			t.Errorf("%s accepted", name)
		}
	}
}
