package workflow

import (
	"context"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
)

func TestDoneMarks(t *testing.T) {
	var d doneMarks
	t0 := time.Now()
	d.set("a", "x1")
	d.set("b", "y1")
	d.deactivated("a", t0)
	if got, ok := d.get("a"); !ok || got != "x1" {
		t.Fatalf("a's mark right after its deactivation: %q %v", got, ok)
	}
	// b leaves, runs here again and leaves later: its first leaving's
	// grace does not drop the mark of its second run.
	d.deactivated("b", t0.Add(time.Second))
	d.set("b", "y2")
	d.deactivated("b", t0.Add(doneGrace))
	d.deactivated("nobody", t0.Add(doneGrace+time.Second))
	if _, ok := d.get("a"); ok {
		t.Error("a's mark kept past its grace")
	}
	if got, ok := d.get("b"); !ok || got != "y2" {
		t.Errorf("b's mark of its second run: %q %v", got, ok)
	}
	d.deactivated("nobody", t0.Add(2*doneGrace))
	if len(d.m) != 0 || len(d.left) != 0 {
		t.Errorf("after every grace: %d marks, %d deactivations kept", len(d.m), len(d.left))
	}
}

// TestDoneRunOutlivesDeactivation: an activity actor deactivated right
// after its run ended (a placement change) and placed here again does not
// run again for a trigger of its reminder that is tried again (Dapr's
// workflow/reconnect/deactivate/activity once counted a third run).
func TestDoneRunOutlivesDeactivation(t *testing.T) {
	e := New(Config{AppID: "app", Actors: newMemHost()})
	id := activityActorID("i", 1, 0)
	req := &protos.ActivityRequest{Name: "a", TaskId: 0, TaskExecutionId: "x1", WorkflowInstance: &protos.WorkflowInstance{InstanceId: "i"}}
	data := encodeActivity(req, &protos.TaskRouter{SourceAppID: "app"})
	e.mu.Lock()
	e.done.set(id, "x1")
	e.mu.Unlock()
	a := activityActor{e}
	a.Deactivate(id)
	// With no worker connected a run would wait for one until ctx ends:
	// nil says it did not run.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := a.Invoke(ctx, id, methodExecute, data); err != nil {
		t.Fatalf("the run that ended here ran again after the deactivation: %v", err)
	}
}
