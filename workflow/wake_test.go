package workflow

import (
	"sync"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/actors"
)

// TestWakeReadsStore: a wake-up reminder of an instance whose copy here has
// an empty inbox reads the store again and runs the events another writer
// queued there.
func TestWakeReadsStore(t *testing.T) {
	host := newMemHost()
	e, ctx := runEngine(t, host)
	var (
		mu   sync.Mutex
		seen []string
	)
	stop := serveWorker(t, e, eventsThenDone(1, &seen, &mu))
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	waitHistory(t, e, id, func(h []*protos.HistoryEvent) bool { return len(h) > 0 })

	// Another writer queues an event: the inbox row, then the metadata.
	inst, err := e.loadDirect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	raised := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{EventRaised: &protos.EventRaisedEvent{Name: "go", Input: wrapperspb.String("x")}}})
	inbox := actors.StateOp{Operation: "upsert", Raw: mustMarshal(raised)}
	inbox.Request.Key = inboxKey(0)
	meta := actors.StateOp{Operation: "upsert", Raw: mustMarshal(&protos.BackendWorkflowStateMetadata{
		HistoryLength: uint64(len(inst.history)), InboxLength: 1, Generation: inst.generation})}
	meta.Request.Key = keyMetadata
	if err := host.TransactState(ctx, e.workflowType, id, []actors.StateOp{inbox, meta}); err != nil {
		t.Fatal(err)
	}

	if _, err := host.CallInternal(ctx, e.workflowType, id, reminderPrefix+newEventPrefix+"-batch", nil); err != nil {
		t.Fatalf("wake-up: %v", err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "x" {
		t.Errorf("the workflow saw %v, want [x]", seen)
	}
}

// TestIdle: only an instance with nothing in flight here is idle.
func TestIdle(t *testing.T) {
	e := New(Config{AppID: "app"})
	running := []*protos.HistoryEvent{wfStarted(), started("w")}
	done := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{}}}, 1)
	for _, tc := range []struct {
		name string
		inst *instance
		busy string // a key of Engine.running
		want bool
	}{
		{"gone", &instance{id: "i"}, "", true},
		{"waiting", &instance{id: "i", exists: true, history: running}, "", true},
		{"ended with a watchdog", &instance{id: "i", exists: true, armed: true, history: append(running[:2:2], done)}, "", true},
		{"events queued", &instance{id: "i", exists: true, history: running, inbox: []*protos.HistoryEvent{started("w")}}, "", false},
		{"watchdog stored", &instance{id: "i", exists: true, armed: true, history: running}, "", false},
		{"run under way", &instance{id: "i", exists: true, history: running}, "run|i", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.running = map[string]bool{}
			if tc.busy != "" {
				e.running[tc.busy] = true
			}
			if got := e.idle(tc.inst); got != tc.want {
				t.Errorf("idle = %v, want %v", got, tc.want)
			}
		})
	}
}
