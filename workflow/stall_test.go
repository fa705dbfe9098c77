package workflow

import (
	"context"
	"strings"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
)

// TestOversize: an instance stalls once its history and inbox pass 95% of
// the max message size; no limit never stalls.
func TestOversize(t *testing.T) {
	big := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{
		TaskScheduledId: 1, Result: wrap(strings.Repeat("x", 1000))}}}, -1)
	inst := &instance{history: []*protos.HistoryEvent{wfStarted(), started("w"), scheduled(1, "")}, inbox: []*protos.HistoryEvent{big}}
	for _, tc := range []struct {
		limit int
		stall bool
	}{{0, false}, {1 << 20, false}, {1000, true}} {
		e := &Engine{cfg: Config{MaxMessageSize: tc.limit}}
		if why := e.oversize(inst); (why != "") != tc.stall {
			t.Errorf("limit %d: oversize %q, want stall %v", tc.limit, why, tc.stall)
		}
	}
}

// TestStalledStatus: a stalled instance reports STALLED until it runs
// again; stall records one event per distinct reason.
func TestStalledStatus(t *testing.T) {
	e := New(Config{AppID: "app"})
	inst := &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStarted(), started("w")}}
	stalled := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStalled{ExecutionStalled: &protos.ExecutionStalledEvent{Description: wrapString("too big")}}})
	inst.history = append(inst.history, stalled)
	if got := inst.state().GetWorkflowStatus(); got != protos.OrchestrationStatus_ORCHESTRATION_STATUS_STALLED {
		t.Fatalf("status %s, want STALLED", statusName(got))
	}
	if err := e.stall(context.Background(), inst, "too big"); err != nil || len(inst.history) != 3 {
		t.Errorf("stall again for the same reason: %v, %d events; want no new event", err, len(inst.history))
	}
	inst.history = append(inst.history, wfStarted())
	if got := inst.state().GetWorkflowStatus(); got != protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING {
		t.Errorf("status after a run %s, want RUNNING", statusName(got))
	}
}

func wrapString(s string) *string { return &s }
