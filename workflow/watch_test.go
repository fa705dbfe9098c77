package workflow

import (
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestWatchersWakeOnlyTheChangedInstance(t *testing.T) {
	var w watchers
	a1, releaseA1 := w.watch("a")
	a2, releaseA2 := w.watch("a")
	b, releaseB := w.watch("b")
	w.notify("a")
	for i, ch := range []<-chan struct{}{a1, a2} {
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatalf("waiter %d of a not woken", i)
		}
	}
	select {
	case <-b:
		t.Fatal("a change of a woke the waiter of b")
	default:
	}
	releaseA1()
	releaseA2()
	releaseA2() // twice is harmless
	if got := w.waiting(); got != 1 {
		t.Fatalf("%d instances watched, want 1 (b)", got)
	}
	// A new watch of a after the change waits for the next one.
	a3, releaseA3 := w.watch("a")
	select {
	case <-a3:
		t.Fatal("a new watch saw the old change")
	default:
	}
	releaseA3()
	releaseB()
	if got := w.waiting(); got != 0 {
		t.Fatalf("%d instances watched after every release, want 0", got)
	}
	w.notify("nobody") // no waiters: nothing happens
}

func TestWatchersKeepTheFinalStateOfARetentionPurge(t *testing.T) {
	var w watchers
	if w.final("a") != nil {
		t.Fatal("a final state before any purge")
	}
	w.rememberFinal("a", &protos.WorkflowState{InstanceId: "a", Output: wrapperspb.String("done")})
	got := w.final("a")
	if got.GetOutput().GetValue() != "done" {
		t.Fatalf("final = %v", got)
	}
	got.Output = nil // a copy: the kept state is not changed
	if w.final("a").GetOutput().GetValue() != "done" {
		t.Fatal("the kept state changed through a copy")
	}
	w.finals["a"] = finalState{st: w.finals["a"].st, at: time.Now().Add(-2 * finalKept)}
	if w.final("a") != nil {
		t.Fatal("a final state older than finalKept is still known")
	}
}

// waiting is the number of instances with waiters.
func (w *watchers) waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}
