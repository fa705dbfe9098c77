package workflow

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func wfStartedWith(name *string, patches ...string) *protos.HistoryEvent {
	e := wfStarted()
	if name != nil || patches != nil {
		e.GetWorkflowStarted().Version = &protos.WorkflowVersion{Name: name, Patches: patches}
	}
	return e
}

func versioned(name *string, patches []string, actions ...*protos.WorkflowAction) *protos.WorkflowResponse {
	return &protos.WorkflowResponse{Version: &protos.WorkflowVersion{Name: name, Patches: patches}, Actions: actions}
}

// TestVersionStall: the worker's version lands on the run's WorkflowStarted
// event; a missing version or patches that do not extend the history's
// stall the run with daprd's reason and words; patches already recorded
// are left out of the run's event.
func TestVersionStall(t *testing.T) {
	v1 := wrapString("v1")
	notAvailable := &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_WorkflowVersionNotAvailable{
		WorkflowVersionNotAvailable: &protos.WorkflowVersionNotAvailableAction{}}}
	continued := &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_CONTINUED_AS_NEW}}}
	for _, tc := range []struct {
		name        string
		history     []*protos.HistoryEvent
		resp        *protos.WorkflowResponse
		reason      protos.StalledReason
		description string // "" : no stall
		recorded    *protos.WorkflowVersion
	}{
		{name: "first run", resp: versioned(v1, []string{"p1"}), recorded: &protos.WorkflowVersion{Name: v1, Patches: []string{"p1"}}},
		{name: "no version", resp: &protos.WorkflowResponse{}},
		{name: "same patches", history: []*protos.HistoryEvent{wfStartedWith(nil, "p1"), started("w")}, resp: versioned(nil, []string{"p1"})},
		{name: "one more patch", history: []*protos.HistoryEvent{wfStartedWith(nil, "p1"), started("w")}, resp: versioned(nil, []string{"p1", "p2"}),
			recorded: &protos.WorkflowVersion{Patches: []string{"p2"}}},
		{name: "name kept", history: []*protos.HistoryEvent{wfStartedWith(v1), started("w")}, resp: versioned(v1, nil),
			recorded: &protos.WorkflowVersion{Name: v1}},
		{name: "patch missing", history: []*protos.HistoryEvent{wfStartedWith(nil, "patch1"), started("w")}, resp: &protos.WorkflowResponse{},
			reason: protos.StalledReason_PATCH_MISMATCH, description: "Patch mismatch. History patches: [patch1], current patches: []. "},
		{name: "patch order", history: []*protos.HistoryEvent{wfStartedWith(nil, "patch2", "patch1"), started("w")}, resp: versioned(nil, []string{"patch1", "patch2"}),
			reason: protos.StalledReason_PATCH_MISMATCH, description: "Patch mismatch. History patches: [patch2, patch1], current patches: [patch1, patch2]. "},
		{name: "version not available", history: []*protos.HistoryEvent{wfStartedWith(v1), started("w")}, resp: &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{notAvailable}},
			reason: protos.StalledReason_VERSION_NOT_AVAILABLE, description: "Version not available: v1"},
		{name: "continued as new", history: []*protos.HistoryEvent{wfStartedWith(nil, "p1"), started("w")}, resp: versioned(nil, nil, continued)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := []*protos.HistoryEvent{wfStarted(), raised("e")}
			reason, why, stalled := versionStall(tc.history, run, tc.resp)
			if stalled != (tc.description != "") || why != tc.description || reason != tc.reason {
				t.Fatalf("stall %v %s %q, want %v %s %q", stalled, reason, why, tc.description != "", tc.reason, tc.description)
			}
			if stalled {
				return
			}
			got := run[0].GetWorkflowStarted().GetVersion()
			if !proto.Equal(got, tc.recorded) {
				t.Errorf("recorded version %v, want %v", got, tc.recorded)
			}
		})
	}
}

// TestCompactPatchesCounts: a patch taken twice in the history needs two
// occurrences in the run to be left out twice.
func TestCompactPatchesCounts(t *testing.T) {
	history := []*protos.HistoryEvent{wfStartedWith(nil, "a"), started("w"), wfStartedWith(nil, "a")}
	run := []*protos.HistoryEvent{wfStartedWith(nil, "a", "a", "a", "b")}
	compactPatches(history, run)
	if got := run[0].GetWorkflowStarted().GetVersion().GetPatches(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("patches %v, want [a b]", got)
	}
	run = []*protos.HistoryEvent{wfStartedWith(nil, "a", "a")}
	if compactPatches(history, run); run[0].GetWorkflowStarted().GetVersion() != nil {
		t.Errorf("version %v, want none", run[0].GetWorkflowStarted().GetVersion())
	}
}

// TestVersionOf: GetInstance reports the version name of the first run.
func TestVersionOf(t *testing.T) {
	inst := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStartedWith(wrapString("v2")), started("w"), wfStarted()}}
	if got := inst.state().GetVersion().GetValue(); got != "v2" {
		t.Errorf("version %q, want v2", got)
	}
	inst.history[0] = wfStarted()
	if got := inst.state().GetVersion(); got != nil {
		t.Errorf("version %v, want none", got)
	}
}

// activities counts the activity work items serveWorker's workers ran.
var activities atomic.Int64

// serveWorker answers the engine's workflow work items with answer (and
// activities with no result) until the returned stop is called.
func serveWorker(t *testing.T, e *Engine, answer func(*protos.WorkflowRequest) *protos.WorkflowResponse) (stop func()) {
	t.Helper()
	w, remove := e.workers.add()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case item := <-w.items:
				if a := item.GetActivityRequest(); a != nil {
					activities.Add(1)
					e.workers.complete("a|"+a.GetWorkflowInstance().GetInstanceId()+"|"+strconv.Itoa(int(a.GetTaskId())),
						&protos.ActivityResponse{InstanceId: a.GetWorkflowInstance().GetInstanceId(), TaskId: a.GetTaskId()})
					continue
				}
				req := item.GetWorkflowRequest()
				res := answer(req)
				res.InstanceId = req.GetInstanceId()
				e.workers.complete("o|"+req.GetInstanceId(), res)
			}
		}
	})
	return func() { close(done); wg.Wait(); remove() }
}

func waitStatus(t *testing.T, e *Engine, id string, want protos.OrchestrationStatus) *protos.WorkflowState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.Wait(ctx, id, false, func(s *protos.WorkflowState) bool { return s.GetWorkflowStatus() == want })
	if err != nil {
		t.Fatalf("wait for %s: %v", statusName(want), err)
	}
	return st
}

// TestPatchStallParks: a replay that drops a patch the history took stalls
// the instance; while parked it refuses external events, suspend,
// terminate and purge; a worker with the patch that connects runs it to
// the end.
func TestPatchStallParks(t *testing.T) {
	host := newMemHost()
	e, ctx := runEngine(t, host)

	waiting := func(*protos.WorkflowRequest) *protos.WorkflowResponse { return versioned(nil, []string{"patch1"}) }
	stop := serveWorker(t, e, waiting)
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i1"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	hist, _ := e.History(ctx, id)
	if got := hist[0].GetWorkflowStarted().GetVersion().GetPatches(); !slices.Equal(got, []string{"patch1"}) {
		t.Fatalf("first run's patches %v, want [patch1]", got)
	}
	stop()

	stop = serveWorker(t, e, func(*protos.WorkflowRequest) *protos.WorkflowResponse { return &protos.WorkflowResponse{} })
	if err := e.RaiseEvent(ctx, id, "Continue", nil); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_STALLED)
	hist, _ = e.History(ctx, id)
	last := hist[len(hist)-1].GetExecutionStalled()
	if last.GetReason() != protos.StalledReason_PATCH_MISMATCH {
		t.Fatalf("last event %v, want a PATCH_MISMATCH stall", hist[len(hist)-1])
	}
	for name, call := range map[string]func() error{
		"raise":     func() error { return e.RaiseEvent(ctx, id, "Other", nil) },
		"suspend":   func() error { return e.Suspend(ctx, id, nil) },
		"resume":    func() error { return e.Resume(ctx, id, nil) },
		"terminate": func() error { return e.Terminate(ctx, id, nil, false) },
		"purge":     func() error { _, err := e.Purge(ctx, id, false); return err },
	} {
		if err := call(); !errors.Is(err, ErrStalled) {
			t.Errorf("%s on a stalled instance: %v, want ErrStalled", name, err)
		}
	}
	stop()

	done := &protos.WorkflowAction{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{CompleteWorkflow: &protos.CompleteWorkflowAction{
		WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: wrapperspb.String(`"ok"`)}}}
	stop = serveWorker(t, e, func(*protos.WorkflowRequest) *protos.WorkflowResponse {
		return versioned(nil, []string{"patch1"}, done)
	})
	defer stop()
	e.kickStalled() // what GetWorkItems does when a worker connects
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	hist, _ = e.History(ctx, id)
	stalls := 0
	for _, h := range hist {
		if h.GetExecutionStalled() != nil {
			stalls++
		}
	}
	if stalls != 1 {
		t.Errorf("%d stall events, want 1", stalls)
	}
	var lastRun *protos.WorkflowStartedEvent
	for _, h := range hist {
		if ws := h.GetWorkflowStarted(); ws != nil {
			lastRun = ws
		}
	}
	if lastRun.GetVersion() != nil {
		t.Errorf("last run's version %v, want none (no new patch)", lastRun.GetVersion())
	}
}

// TestStalledAfterRestart: an instance stalled by an earlier sidecar (not
// parked here) refuses external events and purges but queues a
// termination, as daprd.
func TestStalledAfterRestart(t *testing.T) {
	e := New(Config{AppID: "app"})
	stall := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStalled{ExecutionStalled: &protos.ExecutionStalledEvent{
		Reason: protos.StalledReason_VERSION_NOT_AVAILABLE, Description: wrapString("Version not available: v1")}}})
	inst := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStartedWith(wrapString("v1")), started("w"), stall}}
	terminate := mustMarshal(stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionTerminated{ExecutionTerminated: &protos.ExecutionTerminatedEvent{}}}))
	for _, tc := range []struct {
		name    string
		method  string
		data    []byte
		refused bool
	}{
		{"raise", methodAddEvent, mustMarshal(raised("e")), true},
		{"purge", methodPurge, []byte{0}, true},
		{"force purge", methodPurge, []byte{purgeForce}, false},
		{"terminate", methodAddEvent, terminate, false},
		{"activity result", methodAddEvent, mustMarshal(taskDone(1)), false},
	} {
		if err := e.refuseStalled(inst, tc.method, tc.data); errors.Is(err, ErrStalled) != tc.refused {
			t.Errorf("%s: %v, want refused %v", tc.name, err, tc.refused)
		}
	}
	e.park(inst)
	if err := e.refuseStalled(inst, methodAddEvent, terminate); !errors.Is(err, ErrStalled) {
		t.Errorf("terminate of a parked instance: %v, want ErrStalled", err)
	}
	e.unparkAll()
	if e.parked(inst) {
		t.Error("still parked after a worker connected")
	}
}
