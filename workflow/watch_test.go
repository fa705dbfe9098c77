package workflow

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestWatchersWakeOnlyTheChangedInstance(t *testing.T) {
	var w watchers
	a1, a2, b := w.subscribe("a"), w.subscribe("a"), w.subscribe("b")
	a1ch, _ := a1.next()
	a2ch, _ := a2.next()
	bch, _ := b.next()
	calls := 0
	w.notify("a", func() *protos.WorkflowState {
		calls++
		return &protos.WorkflowState{InstanceId: "a", Output: wrapperspb.String("one")}
	})
	if calls != 1 {
		t.Fatalf("the state was computed %d times for two waiters, want once", calls)
	}
	for i, ch := range []<-chan struct{}{a1ch, a2ch} {
		select {
		case <-ch:
		case <-time.After(time.Second):
			t.Fatalf("waiter %d of a not woken", i)
		}
	}
	select {
	case <-bch:
		t.Fatal("a change of a woke the waiter of b")
	default:
	}
	// Each waiter gets its own copy of the state the change left.
	next1, st1 := a1.next()
	_, st2 := a2.next()
	if st1.GetOutput().GetValue() != "one" || st2.GetOutput().GetValue() != "one" {
		t.Fatalf("handed states %v and %v", st1, st2)
	}
	st1.Output = nil
	if _, again := a2.next(); again.GetOutput().GetValue() != "one" {
		t.Fatal("a waiter's copy changed another's")
	}
	// A change that happens before the waiter looks again is not lost:
	// the channel it holds is closed, and the state is the latest.
	w.notify("a", func() *protos.WorkflowState { return &protos.WorkflowState{Output: wrapperspb.String("two")} })
	w.notify("a", func() *protos.WorkflowState { return &protos.WorkflowState{Output: wrapperspb.String("three")} })
	select {
	case <-next1:
	default:
		t.Fatal("a change after next was missed")
	}
	if _, st := a1.next(); st.GetOutput().GetValue() != "three" {
		t.Fatalf("state after two changes %v, want the last", st)
	}
	// A purge hands no state: the waiters read the store.
	w.notify("a", nil)
	if _, st := a1.next(); st != nil {
		t.Fatalf("state after a purge %v, want none", st)
	}
	a1.release()
	a2.release()
	a2.release() // twice is harmless
	if got := w.waiting(); got != 1 {
		t.Fatalf("%d instances watched, want 1 (b)", got)
	}
	// Nobody waits for a: its state is not computed.
	w.notify("a", func() *protos.WorkflowState { t.Fatal("state computed with no waiter"); return nil })
	b.release()
	if got := w.waiting(); got != 0 {
		t.Fatalf("%d instances watched after every release, want 0", got)
	}
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

// TestWaitIsHandedChanges: a waiter reads the instance from the store
// once; the changes made on this host hand it the new state, so waiting
// through a run of n turns costs no history reads (it read the whole
// history back at every change: O(n²) reads for a fan-out).
func TestWaitIsHandedChanges(t *testing.T) {
	host := newMemHost()
	e, ctx := runEngine(t, host)
	const events = 5
	stop := serveWorker(t, e, func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		raised := 0
		for _, evs := range [][]*protos.HistoryEvent{req.GetPastEvents(), req.GetNewEvents()} {
			for _, ev := range evs {
				if ev.GetEventRaised() != nil {
					raised++
				}
			}
		}
		if raised < events {
			return &protos.WorkflowResponse{}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
			CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, Result: wrapperspb.String(`"done"`)}}}}}
	})
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "handed"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	type result struct {
		st  *protos.WorkflowState
		err error
	}
	got := make(chan result, 1)
	subscribed := make(chan struct{})
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		st, err := e.Wait(wctx, id, true, func(s *protos.WorkflowState) bool {
			select {
			case <-subscribed:
			default:
				close(subscribed)
			}
			return s.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED
		})
		got <- result{st, err}
	}()
	<-subscribed
	host.mu.Lock()
	before := host.historyReads
	host.mu.Unlock()
	for i := range events {
		if err := e.RaiseEvent(ctx, id, "e", wrapperspb.String(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.st.GetOutput().GetValue() != `"done"` {
		t.Fatalf("wait returned %v", r.st)
	}
	host.mu.Lock()
	reads := host.historyReads - before
	host.mu.Unlock()
	// The instance's own turns may reload it (none should here: it stays
	// cached); the waiter must not.
	if reads != 0 {
		t.Errorf("%d history reads while waiting through %d changes, want 0", reads, events)
	}
}
