package workflow

import (
	"sync"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestUniqueEventTime: ingestion times only go up, even when asked for
// faster than the clock moves.
func TestUniqueEventTime(t *testing.T) {
	e := New(Config{AppID: "app"})
	prev := e.uniqueEventTime().AsTime()
	for range 10_000 {
		next := e.uniqueEventTime().AsTime()
		if !next.After(prev) {
			t.Fatalf("%v after %v", next, prev)
		}
		prev = next
	}
}

// TestExternalEventRedeliveryDropped: an EventRaised sent again with the
// same bytes (a sender's retry) is one event; a second RaiseEvent with the
// same name and payload is another.
func TestExternalEventRedeliveryDropped(t *testing.T) {
	host := newMemHost()
	e, ctx := runEngine(t, host)
	var (
		mu   sync.Mutex
		seen []string
	)
	answer := eventsThenDone(2, &seen, &mu)
	stop := serveWorker(t, e, answer)
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	if err := e.RaiseEvent(ctx, id, "go", wrapperspb.String("v1")); err != nil {
		t.Fatal(err)
	}
	var raised *protos.HistoryEvent
	waitHistory(t, e, id, func(h []*protos.HistoryEvent) bool {
		for _, ev := range h {
			if ev.GetEventRaised() != nil {
				raised = ev
			}
		}
		return raised != nil
	})
	stop() // no run takes what the redelivery may queue
	if _, err := host.CallInternal(ctx, e.workflowType, id, methodAddEvent, mustMarshal(raised)); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	inst, err := e.loadDirect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.inbox) != 0 {
		t.Fatalf("the redelivered event was queued: inbox %v", inst.inbox)
	}
	stop = serveWorker(t, e, answer)
	defer stop()
	if err := e.RaiseEvent(ctx, id, "go", wrapperspb.String("v1")); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("the workflow saw %d events, want 2", len(seen))
	}
}
