package workflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/placement"
)

// TestDispatchLastWorkerLeaves: a work item whose worker disconnects with
// no other worker connected ends the dispatch at once with errNoWorker
// (the turn ends; the work is parked), kept or not.
func TestDispatchLastWorkerLeaves(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run("keep="+strconv.FormatBool(keep), func(t *testing.T) {
			ws := newWorkers()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			w, remove := ws.add()
			got := make(chan error, 1)
			go func() {
				_, err := ws.dispatchKeep(ctx, "k", &protos.WorkItem{}, time.Minute, keep)
				got <- err
			}()
			<-w.items
			start := time.Now()
			remove()
			if err := <-got; !errors.Is(err, errNoWorker) {
				t.Fatalf("dispatch after the last worker left: %v, want errNoWorker", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("dispatch waited %s for another worker", d)
			}
		})
	}
}

// TestParkedActivityRunsOnConnect: an activity whose worker disconnected
// before answering runs again as soon as a worker connects, and the
// instance completes.
func TestParkedActivityRunsOnConnect(t *testing.T) {
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour})
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
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{ScheduleTask: &protos.ScheduleTaskAction{Name: "a"}}}}}
	}
	// The first worker runs the workflow and takes the activity, then
	// leaves without answering it.
	w, remove := e.workers.add()
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i1"}); err != nil {
		t.Fatal(err)
	}
	item := <-w.items
	req := item.GetWorkflowRequest()
	res := answer(req)
	res.InstanceId = req.GetInstanceId()
	e.workers.complete("o|"+req.GetInstanceId(), res)
	if item = <-w.items; item.GetActivityRequest() == nil {
		t.Fatalf("second item %v, want the activity", item)
	}
	remove()

	ran := activities.Load()
	stop := serveWorker(t, e, answer)
	defer stop()
	e.kickStalled() // what a connecting worker's stream does
	waitStatus(t, e, "i1", protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	if n := activities.Load() - ran; n != 1 {
		t.Errorf("the activity ran %d times on the second worker, want 1", n)
	}
}

// TestCreateFailsWithoutReminder: as daprd, an instance whose reminder
// the scheduler refuses is not created (the client is told why) and
// leaves no state; once reminders are stored again it is created.
func TestCreateFailsWithoutReminder(t *testing.T) {
	host := newMemHost()
	host.remindErr = errors.New("etcdserver: mvcc: database space exceeded")
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	for _, at := range []*timestamppb.Timestamp{nil, timestamppb.New(time.Now().Add(time.Hour))} {
		_, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i", ScheduledStartTimestamp: at})
		if err == nil || !strings.Contains(err.Error(), "database space exceeded") {
			t.Fatalf("start (at %v) with reminders refused: %v", at, err)
		}
		if keys := host.keys(); len(keys) != 0 {
			t.Fatalf("a refused start left state %v", keys)
		}
	}
	host.mu.Lock()
	host.remindErr = nil
	host.mu.Unlock()
	if _, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i"}); err != nil {
		t.Fatalf("start once reminders are stored: %v", err)
	}
	if _, err := e.Get(ctx, "i", false); err != nil {
		t.Fatal(err)
	}
}

// unhostedHost is a memHost on which no sidecar hosts the workflow type:
// calls of it find no address; internal reminders are recorded.
type unhostedHost struct {
	*memHost
	workflowType string
	internal     []actors.ReminderRequest
}

func (h *unhostedHost) CallInternal(ctx context.Context, actorType, actorID, method string, data []byte) ([]byte, error) {
	if actorType == h.workflowType {
		return nil, fmt.Errorf("%w: %s", placement.ErrNoAddress, actorType)
	}
	return h.memHost.CallInternal(ctx, actorType, actorID, method, data)
}

func (h *unhostedHost) CreateInternalReminder(_ context.Context, req actors.ReminderRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.internal = append(h.internal, req)
	return nil
}

func (h *unhostedHost) DeleteInternalReminder(context.Context, string, string, string) error {
	return nil
}

// TestResultWaitsInReminder: an activity result for an instance of this
// app that no sidecar hosts now is stored in an activity-result reminder
// on the instance, as daprd does, rather than retried without end.
func TestResultWaitsInReminder(t *testing.T) {
	h := &unhostedHost{memHost: newMemHost()}
	e := New(Config{AppID: "app", Actors: h})
	h.workflowType = e.WorkflowActorType()
	e.hostWait = 10 * time.Millisecond
	ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: 3}}})
	if err := e.sendResult(context.Background(), "app", "i", ev); err != nil {
		t.Fatalf("send result to an unhosted instance: %v", err)
	}
	if len(h.internal) != 1 || h.internal[0].ActorType != e.WorkflowActorType() || h.internal[0].ActorID != "i" ||
		!strings.HasPrefix(h.internal[0].Name, activityResultPrefix) {
		t.Fatalf("reminders %+v, want one activity-result reminder on workflow i", h.internal)
	}
}
