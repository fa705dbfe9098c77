package workflow

import (
	"testing"
	"time"
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
