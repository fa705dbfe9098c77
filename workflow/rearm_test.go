package workflow

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestWatchdogStoredOnceSchedulerBack: an event queued while the scheduler
// refuses the instance's watchdog still gets its watchdog once the
// scheduler takes reminders again.
func TestWatchdogStoredOnceSchedulerBack(t *testing.T) {
	host, e, ctx, id, watchdog := startSettled(t)

	host.mu.Lock()
	host.remindErr = errors.New("scheduler unavailable")
	host.mu.Unlock()
	if err := e.RaiseEvent(ctx, id, "go", wrapperspb.String("a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if watchdog() {
		t.Fatal("a watchdog was stored while the scheduler refused it")
	}
	host.mu.Lock()
	host.remindErr = nil
	host.mu.Unlock()
	waitFor(t, "the watchdog stored once the scheduler is back", watchdog)
}

// startSettled runs an engine on a memHost with a worker and starts an
// instance that waits for events, once it settled (its watchdog deleted);
// watchdog reports whether the instance's watchdog is stored.
func startSettled(t *testing.T) (host *memHost, e *Engine, ctx context.Context, id string, watchdog func() bool) {
	t.Helper()
	host = newMemHost()
	e = New(Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	var (
		mu   sync.Mutex
		seen []string
	)
	t.Cleanup(serveWorker(t, e, eventsThenDone(2, &seen, &mu)))
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	watchdog = func() bool { _, ok := host.reminder(e.workflowType, id, watchdogName); return ok }
	waitFor(t, "the settled instance's watchdog deleted", func() bool { return !watchdog() })
	return host, e, ctx, id, watchdog
}

// armInTurn stores the watchdog of instance id, kept here, in its
// actor's turn.
func armInTurn(t *testing.T, ctx context.Context, host *memHost, e *Engine, id string) {
	t.Helper()
	host.mu.Lock()
	turn := host.locks[e.workflowType+"/"+id]
	host.mu.Unlock()
	turn.Lock()
	defer turn.Unlock()
	e.mu.Lock()
	inst := e.instances[id]
	e.mu.Unlock()
	if inst == nil {
		t.Fatal("the running instance is not kept here")
	}
	if err := e.armErr(ctx, inst); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits up to 10s for ok.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeavingInstanceSettles: an instance whose actor leaves this host
// (the app's last worker left) with its watchdog stored settles: once its
// delivery in flight ended, or in the deactivation when none is. No copy
// is left here for a later settle call to find, and the watchdog would
// stay beside the reminders daprd keeps for such an instance.
func TestLeavingInstanceSettles(t *testing.T) {
	host, e, ctx, id, watchdog := startSettled(t)

	// A delivery of the instance in flight, and its watchdog stored (in
	// the actor's turn).
	e.track(id)
	armInTurn(t, ctx, host, e, id)
	// The deactivation does not wait for the delivery (a lost
	// placement's would hold the reconnection); the watchdog stays
	// until the delivery ended.
	orchestratorActor{e}.Deactivate(id)
	time.Sleep(200 * time.Millisecond)
	if !watchdog() {
		t.Fatal("the watchdog was deleted while a delivery was in flight")
	}
	e.untrack(id, true)
	waitFor(t, "the watchdog of the instance that left deleted", func() bool { return !watchdog() })

	// With nothing in flight, it settles in the deactivation.
	if _, err := e.call(ctx, e.workflowType, id, methodGet, nil); err != nil {
		t.Fatal(err)
	}
	armInTurn(t, ctx, host, e, id)
	orchestratorActor{e}.Deactivate(id)
	if watchdog() {
		t.Fatal("the idle instance left with its watchdog stored")
	}
}
