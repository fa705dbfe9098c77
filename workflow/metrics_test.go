package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// recMetrics records what the engine tells RuntimeMetrics, one line a call.
type recMetrics struct {
	mu    sync.Mutex
	lines []string
}

func (r *recMetrics) add(format string, a ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *recMetrics) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// all is a copy of the lines recorded so far.
func (r *recMetrics) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *recMetrics) WorkflowOperation(op string, ok bool, _ time.Duration) {
	r.add("op %s %t", op, ok)
}
func (r *recMetrics) WorkflowExecution(wf, status string, _ time.Duration) {
	r.add("exec %s %s", wf, status)
}
func (r *recMetrics) WorkflowScheduling(wf string, _ time.Duration) { r.add("sched %s", wf) }
func (r *recMetrics) ActivityOperation(act, status string, _ time.Duration) {
	r.add("actop %s %s", act, status)
}
func (r *recMetrics) ActivityExecution(act, status string, _ time.Duration) {
	r.add("actexec %s %s", act, status)
}
func (r *recMetrics) WorkflowPayloadRatio(wf string, ratio float64) {
	r.add("ratio %s %v", wf, ratio > 0)
}
func (r *recMetrics) ActivityPayloadRatio(wf, act string, ratio float64) {
	r.add("actratio %s %s %v", wf, act, ratio > 0.5)
}

// oneActivity answers the first run with one activity (input in) and the
// next with the end.
func oneActivity(in string) func(*protos.WorkflowRequest) *protos.WorkflowResponse {
	return func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		for _, ev := range req.GetNewEvents() {
			if ev.GetTaskCompleted() != nil {
				return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 1, WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
					CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED}}}}}
			}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{Id: 0, WorkflowActionType: &protos.WorkflowAction_ScheduleTask{
			ScheduleTask: &protos.ScheduleTaskAction{Name: "act", Input: wrapperspb.String(in)}}}}}
	}
}

func metricsEngine(t *testing.T, m *recMetrics, limit int) (*Engine, context.Context) {
	e := New(Config{AppID: "app", Actors: newMemHost(), Metrics: m, MaxMessageSize: limit})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	return e, ctx
}

// TestRuntimeMetrics: a workflow with one activity is counted as daprd
// counts it: one create_workflow, two work items' payload ratios, one
// activity's ratio, operation and execution, and one successful
// execution; a purge is an operation too.
func TestRuntimeMetrics(t *testing.T) {
	m := &recMetrics{}
	e, ctx := metricsEngine(t, m, 1<<20)
	stop := serveWorker(t, e, oneActivity("small"))
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	// The execution is recorded once the result was delivered, which may
	// follow the waiter's answer.
	waitFor(t, "the activity's execution recorded", func() bool { return m.count("actexec act success") > 0 })
	if _, err := e.Purge(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"op create_workflow true": 1, "op purge_workflow true": 1,
		"ratio w true": 2, "actratio w act false": 1, "sched w": 1,
		"actop act success": 1, "actexec act success": 1, "exec w success": 1,
	}
	for prefix, n := range want {
		if got := m.count(prefix); got != n {
			t.Errorf("%q recorded %d times, want %d; all: %v", prefix, got, n, m.all())
		}
	}
}

// TestActivityOversizeStalls: an activity whose request would not fit
// the worker's stream stalls its instance before it is dispatched, as in
// daprd (PAYLOAD_SIZE_EXCEEDED), with its ratio recorded.
func TestActivityOversizeStalls(t *testing.T) {
	m := &recMetrics{}
	const limit = 64 << 10
	e, ctx := metricsEngine(t, m, limit)
	stop := serveWorker(t, e, oneActivity(strings.Repeat("x", limit)))
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "m2"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_STALLED)
	hist, err := e.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	last := hist[len(hist)-1].GetExecutionStalled()
	if last.GetReason() != protos.StalledReason_PAYLOAD_SIZE_EXCEEDED || !strings.Contains(last.GetDescription(), "activity 'act::0' payload") {
		t.Errorf("last event %v, want the activity's PAYLOAD_SIZE_EXCEEDED stall", hist[len(hist)-1])
	}
	if m.count("actratio w act true") != 1 || m.count("actop ") != 0 {
		t.Errorf("recorded %v: want the oversize ratio once and no activity run", m.all())
	}
}

// A purge of an instance the store does not have answers at once, also
// before any worker connected (the actor types are not hosted yet), as
// daprd's ERR_INSTANCE_ID_NOT_FOUND does; it counts as a failed purge.
func TestPurgeUnknownAnswersAtOnce(t *testing.T) {
	m := &recMetrics{}
	e := New(Config{AppID: "app", Actors: newMemHost(), Metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	deleted, err := e.Purge(ctx, "non-existent-id", true)
	if err != nil || deleted {
		t.Fatalf("Purge = %v, %v; want false, nil at once", deleted, err)
	}
	if m.count("op purge_workflow false") != 1 {
		t.Errorf("recorded %v", m.all())
	}
}
