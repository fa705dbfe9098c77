package workflow

import (
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// An activity run whose instance is gone by the time it ends (its state
// was purged, or lost with an in-memory store) counts as a failed
// execution, as daprd counts it; one whose instance takes the result
// counts as a success.
func TestActivityExecutionStatus(t *testing.T) {
	m := &recMetrics{}
	e, ctx := metricsEngine(t, m, 0)
	stop := serveWorker(t, e, oneActivity("in"))
	defer stop()

	req := &protos.ActivityRequest{Name: "gone", Input: wrapperspb.String(`"x"`), TaskId: 0,
		WorkflowInstance: &protos.WorkflowInstance{InstanceId: "no-such-instance"}}
	data := encodeActivity(req, &protos.TaskRouter{SourceAppID: "app"})
	if _, err := e.call(ctx, e.activityType, activityActorID("no-such-instance", 1, 0), methodExecute, data); err != nil {
		t.Fatalf("activity run for a missing instance: %v", err)
	}
	if m.count("actexec gone failed") != 1 || m.count("actexec gone success") != 0 || m.count("actop gone success") != 1 {
		t.Errorf("recorded %v; want one successful operation and one failed execution of gone", m.all())
	}

	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	waitFor(t, "the activity's execution recorded", func() bool { return m.count("actexec act success") > 0 })
	if m.count("actexec act success") != 1 || m.count("actexec act failed") != 0 {
		t.Errorf("recorded %v; want one successful execution of act", m.all())
	}
}

// An instance that ends is no longer held in memory (daprd deactivates
// its actor): its state is read from the store again when asked for.
func TestEndedInstanceForgotten(t *testing.T) {
	m := &recMetrics{}
	e, ctx := metricsEngine(t, m, 0)
	stop := serveWorker(t, e, oneActivity("in"))
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "ended"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	// The instance is forgotten once its last turn ended, which may be
	// after its waiter was told it completed.
	waitFor(t, "the ended instance's state dropped from the cache", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, cached := e.instances[id]
		return !cached
	})
	if ok, err := e.Purge(ctx, id, false); err != nil || !ok {
		t.Errorf("Purge of the ended instance = %v, %v; want true, nil", ok, err)
	}
}
