package workflow

import (
	"context"
	"strings"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// storeInstance saves instance id with history as the engine would.
func storeInstance(t *testing.T, e *Engine, id string, history ...*protos.HistoryEvent) {
	t.Helper()
	if _, err := e.save(context.Background(), &instance{id: id, history: history, historyRewritten: true}); err != nil {
		t.Fatal(err)
	}
}

func childCreated(id int32, child string) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{
		ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{Name: "child", InstanceId: child}}}, id)
}

func ended() *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}, -1)
}

// TestRecreateWaitsForChildrenTree: an ended instance is re-created only
// once every child (and grandchild) its execution created has ended; a
// purged child counts as ended. The refusal is daprd's: AlreadyExists,
// with the path to the descendant that runs.
func TestRecreateWaitsForChildrenTree(t *testing.T) {
	h := newMemHost()
	e := New(Config{AppID: "app", Actors: h})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()

	storeInstance(t, e, "p", wfStarted(), started("parent"), childCreated(0, "c"), childCreated(1, "gone"), ended())
	storeInstance(t, e, "c", wfStarted(), started("child"), childCreated(0, "g"), ended())
	storeInstance(t, e, "g", wfStarted(), started("grandchild"), scheduled(0, ""))

	_, err := e.Start(ctx, &protos.CreateInstanceRequest{InstanceId: "p", Name: "parent"})
	s := status.Convert(grpcErr(err))
	want := "cannot recreate workflow with ID 'p': child workflow 'c': child workflow 'g': orchestration has not yet completed"
	if s.Code() != codes.AlreadyExists || s.Message() != want {
		t.Fatalf("re-create with a grandchild running: %v %q, want AlreadyExists %q", s.Code(), s.Message(), want)
	}
	if st, err := e.Get(ctx, "p", false); err != nil || st.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED {
		t.Fatalf("the refused re-creation changed the instance: %v %v", st, err)
	}

	storeInstance(t, e, "g", wfStarted(), started("grandchild"), scheduled(0, ""), taskDone(0), ended())
	e.mu.Lock()
	delete(e.instances, "g") // the store changed under the cached copy
	e.mu.Unlock()
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{InstanceId: "p", Name: "parent"}); err != nil {
		t.Fatalf("re-create once the tree ended: %v", err)
	}
}

// TestChildTaken: a child whose ID is taken fails its task as daprd's,
// WorkflowInstanceAlreadyExists, from this host and from another's text;
// a tree that could not be asked is retried, not failed.
func TestChildTaken(t *testing.T) {
	e := New(Config{AppID: "app"})
	running := recreateErr{msg: "cannot recreate workflow with ID 'x': child workflow 'y': " + notCompleted}
	unknown := recreateErr{msg: "cannot recreate workflow with ID 'x': failed to verify child workflow 'y' is in a terminal state: timeout"}
	remote := func(err error) error { return status.Error(codes.Unknown, "actor call: "+err.Error()) }
	for _, tc := range []struct {
		name        string
		err         error
		taken, fail bool
	}{
		{"running", ErrExists, true, true},
		{"tree runs", running, true, true},
		{"tree runs, remote", remote(running), true, true},
		{"tree not asked", unknown, false, false},
		{"tree not asked, remote", remote(unknown), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := childTaken(tc.err); got != tc.taken {
				t.Errorf("childTaken = %v, want %v", got, tc.taken)
			}
			if got := e.childCreateFails("other", tc.err); got != tc.fail {
				t.Errorf("childCreateFails = %v, want %v", got, tc.fail)
			}
		})
	}
	if got := unwrapActorErr(remote(running)).Error(); got != running.msg {
		t.Errorf("remote refusal's text %q, want %q", got, running.msg)
	}
	if fd := childTakenFailure(running); fd.GetErrorType() != "WorkflowInstanceAlreadyExists" || !strings.Contains(fd.GetErrorMessage(), "'y'") {
		t.Errorf("failure %v", fd)
	}
}
