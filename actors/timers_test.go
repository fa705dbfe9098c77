package actors

import (
	"context"
	"testing"
)

// TestTimerSetFinishKeepsNewerRun: a one-shot timer made again under its
// name while its last firing was ending goes on (the old run's end does not
// stop it).
func TestTimerSetFinishKeepsNewerRun(t *testing.T) {
	var s timerSet
	ctx1, cancel1 := context.WithCancel(t.Context())
	run1 := s.replace("t", cancel1)
	ctx2, cancel2 := context.WithCancel(t.Context())
	run2 := s.replace("t", cancel2)
	if ctx1.Err() == nil {
		t.Fatal("the replaced run was not stopped")
	}
	s.finish("t", run1)
	if ctx2.Err() != nil {
		t.Fatal("the end of the old run stopped the new one")
	}
	s.mu.Lock()
	tracked := s.timers["t"] == run2
	s.mu.Unlock()
	if !tracked {
		t.Fatal("the new run is no longer tracked")
	}
	s.finish("t", run2)
	if ctx2.Err() == nil || len(s.timers) != 0 {
		t.Fatalf("after its own end: err %v, %d tracked", ctx2.Err(), len(s.timers))
	}
	// remove stops whatever run there is.
	ctx3, cancel3 := context.WithCancel(t.Context())
	s.replace("t", cancel3)
	s.remove("t")
	if ctx3.Err() == nil || len(s.timers) != 0 {
		t.Fatal("remove left the run going")
	}
}
