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
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host, SchedulerReminders: true, WatchdogPeriod: time.Hour})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	var (
		mu   sync.Mutex
		seen []string
	)
	stop := serveWorker(t, e, eventsThenDone(2, &seen, &mu))
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	watchdog := func() bool { _, ok := host.reminder(e.workflowType, id, watchdogName); return ok }
	waitFor(t, "the settled instance's watchdog deleted", func() bool { return !watchdog() })

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
