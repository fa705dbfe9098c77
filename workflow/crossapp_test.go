package workflow

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

func TestActorTypesOfApps(t *testing.T) {
	e := New(Config{AppID: "a", Namespace: "ns"})
	for _, tc := range []struct{ app, wf, act string }{
		{"", "dapr.internal.ns.a.workflow", "dapr.internal.ns.a.activity"},
		{"a", "dapr.internal.ns.a.workflow", "dapr.internal.ns.a.activity"},
		{"b", "dapr.internal.ns.b.workflow", "dapr.internal.ns.b.activity"},
	} {
		if got := e.workflowTypeOf(tc.app); got != tc.wf {
			t.Errorf("workflow type of %q: %s, want %s", tc.app, got, tc.wf)
		}
		if got := e.activityTypeOf(tc.app); got != tc.act {
			t.Errorf("activity type of %q: %s, want %s", tc.app, got, tc.act)
		}
	}
	if e.remote("") || e.remote("a") || !e.remote("b") {
		t.Error("remote: only another app's ID is remote")
	}
	if got := New(Config{AppID: "a"}).workflowTypeOf("b"); got != "dapr.internal.default.b.workflow" {
		t.Errorf("no namespace: %s", got)
	}
}

func TestActionRouter(t *testing.T) {
	e := New(Config{AppID: "a"})
	target := "b"
	r := e.actionRouter(&protos.WorkflowAction{Router: &protos.TaskRouter{SourceAppID: "spoofed", TargetAppID: &target}})
	if r.GetSourceAppID() != "a" || r.GetTargetAppID() != "b" {
		t.Errorf("router %v, want source a target b", r)
	}
	r = e.actionRouter(&protos.WorkflowAction{})
	if r.GetSourceAppID() != "a" || r.TargetAppID != nil {
		t.Errorf("local router %v, want source a and no target", r)
	}
}

func TestActivityInvocationRoundTrip(t *testing.T) {
	target := "b"
	router := &protos.TaskRouter{SourceAppID: "a", TargetAppID: &target}
	req := &protos.ActivityRequest{Name: "act", Input: wrap(`"in"`), TaskId: 3, TaskExecutionId: "x1",
		WorkflowInstance: &protos.WorkflowInstance{InstanceId: "wf::odd", ExecutionId: wrap("e")}}
	got, gotRouter, err := decodeActivity(activityActorID("wf", 7, 3), encodeActivity(req, router))
	if err != nil {
		t.Fatal(err)
	}
	want := &protos.ActivityRequest{Name: "act", Input: wrap(`"in"`), TaskId: 3, TaskExecutionId: "x1",
		WorkflowInstance: &protos.WorkflowInstance{InstanceId: "wf"}}
	if !proto.Equal(got, want) {
		t.Errorf("request %v, want %v", got, want)
	}
	if !proto.Equal(gotRouter, router) {
		t.Errorf("router %v, want %v", gotRouter, router)
	}
	for _, bad := range []struct {
		id   string
		data []byte
	}{
		{"noseparator", encodeActivity(req, router)},
		{"::3::1", encodeActivity(req, router)},
		{"wf::3::1", mustMarshal(&protos.ActivityInvocation{})},
		{"wf::3::1", []byte{0xff, 0xff}},
	} {
		if _, _, err := decodeActivity(bad.id, bad.data); err == nil {
			t.Errorf("decodeActivity(%q, %x) accepted", bad.id, bad.data)
		}
	}
}

func FuzzDecodeActivity(f *testing.F) {
	f.Add("wf::1::2", encodeActivity(&protos.ActivityRequest{Name: "n", TaskId: 1}, &protos.TaskRouter{SourceAppID: "a"}))
	f.Add("x", []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, id string, data []byte) {
		req, _, err := decodeActivity(id, data)
		if err == nil && req.GetWorkflowInstance().GetInstanceId() == "" {
			t.Fatal("accepted an invocation with no instance")
		}
	})
}

func TestRunningChildRefsAndRemoteRuns(t *testing.T) {
	e := New(Config{AppID: "a", SchedulerReminders: true})
	b := "b"
	remote := &protos.TaskRouter{SourceAppID: "a", TargetAppID: &b}
	local := &protos.TaskRouter{SourceAppID: "a"}
	child := func(id int32, inst string, r *protos.TaskRouter) *protos.HistoryEvent {
		h := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{InstanceId: inst}}}, id)
		h.Router = r
		return h
	}
	task := func(id int32, r *protos.TaskRouter) *protos.HistoryEvent {
		h := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: "t"}}}, id)
		h.Router = r
		return h
	}
	doneTask := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: 3}}}, -1)
	doneChild := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{TaskScheduledId: 1}}}, -1)
	inst := &instance{id: "wf", exists: true, generation: 5, history: []*protos.HistoryEvent{
		started("w"), child(0, "c0", remote), child(1, "c1", remote), child(2, "c2", local),
		task(3, remote), task(4, remote), task(5, local), doneTask, doneChild,
	}}
	refs := inst.runningChildRefs()
	want := []childRef{{id: "c0", app: "b"}, {id: "c2"}}
	if len(refs) != len(want) || refs[0] != want[0] || refs[1] != want[1] {
		t.Errorf("running children %v, want %v", refs, want)
	}
	runs := e.remoteRuns(inst)
	if len(runs) != 1 || runs[0] != (actorRef{typ: "dapr.internal.default.b.activity", id: "wf::4::5"}) {
		t.Errorf("remote runs %v, want task 4 on b", runs)
	}
	if New(Config{AppID: "a"}).remoteRuns(inst) != nil {
		t.Error("remote runs without scheduler reminders (no run-activity reminders are kept)")
	}
}

func TestDetach(t *testing.T) {
	e := New(Config{AppID: "a"})
	run, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(run); close(done) }()
	for {
		e.mu.Lock()
		ready := e.ctx != nil
		e.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(time.Millisecond)
	}
	caller, cancelCaller := context.WithCancel(context.Background())
	ctx, cancel := e.detach(caller)
	defer cancel()
	cancelCaller()
	if ctx.Err() != nil {
		t.Fatal("the caller's cancellation ended the detached context")
	}
	stop()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the engine's stop did not end the detached context")
	}
	<-done
}

func TestHeldInstanceRunsWithoutRepeatingItsStart(t *testing.T) {
	wfStarted := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}}, -1)
	raised := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: "x"}}}, -1)
	start := started("w")
	fresh := &instance{id: "i", exists: true, inbox: []*protos.HistoryEvent{start, raised}}
	if fresh.held() || len(fresh.newRunEvents()) != 2 {
		t.Error("a new instance is taken as held")
	}
	held := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStarted, start}, inbox: []*protos.HistoryEvent{start, raised}}
	if !held.held() {
		t.Fatal("an instance whose start is in history and inbox is not held")
	}
	if got := held.newRunEvents(); len(got) != 1 || got[0] != raised {
		t.Errorf("held run events %v, want only the raised event", got)
	}
	if st := held.state(); StatusName(st.GetWorkflowStatus()) != "RUNNING" {
		t.Errorf("held instance is %s, want RUNNING", StatusName(st.GetWorkflowStatus()))
	}
	running := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStarted, start}, inbox: []*protos.HistoryEvent{raised}}
	if running.held() || len(running.newRunEvents()) != 1 {
		t.Error("a running instance with new events is taken as held")
	}
}

func TestDispatchKeepOutlivesItsCaller(t *testing.T) {
	ws := newWorkers()
	w, remove := ws.add()
	caller, cancelCaller := context.WithCancel(context.Background())
	type result struct {
		msg proto.Message
		err error
	}
	got := make(chan result, 2)
	go func() {
		m, err := ws.dispatchKeep(caller, "kept", &protos.WorkItem{CompletionToken: "kept"}, -1, true)
		got <- result{m, err}
	}()
	<-w.items
	cancelCaller()
	select {
	case r := <-got:
		t.Fatalf("a taken item was given up with its caller: %v %v", r.msg, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if !ws.complete("kept", &protos.ActivityResponse{TaskId: 9}) {
		t.Fatal("nothing waited for the answer")
	}
	if r := <-got; r.err != nil || r.msg.(*protos.ActivityResponse).GetTaskId() != 9 {
		t.Fatalf("kept dispatch: %v %v", r.msg, r.err)
	}

	// Without keep the caller's end ends the wait.
	caller, cancelCaller = context.WithCancel(context.Background())
	go func() {
		m, err := ws.dispatch(caller, "plain", &protos.WorkItem{}, -1)
		got <- result{m, err}
	}()
	<-w.items
	cancelCaller()
	if r := <-got; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("plain dispatch after its caller ended: %v %v", r.msg, r.err)
	}

	// A kept item whose worker leaves with no other is given up at once.
	w2, remove2 := ws.add()
	remove()
	caller, cancelCaller = context.WithCancel(context.Background())
	go func() {
		m, err := ws.dispatchKeep(caller, "left", &protos.WorkItem{}, -1, true)
		got <- result{m, err}
	}()
	<-w2.items
	defer cancelCaller()
	remove2()
	select {
	case r := <-got:
		if !errors.Is(r.err, errNoWorker) {
			t.Fatalf("kept dispatch whose worker left: %v %v", r.msg, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a kept dispatch waits on after its worker left")
	}
}
