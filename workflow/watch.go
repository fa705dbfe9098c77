package workflow

import (
	"sync"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

// finalKept is how long the final state of an instance purged by its
// retention policy stays known to Wait.
const finalKept = 30 * time.Second

// watchers wakes the waiters of one instance when it changes on this
// host, so that a change wakes only those who wait for that instance
// (100 clients waiting for 100 instances no longer reload all 100 on
// every change of any).
type watchers struct {
	mu sync.Mutex
	m  map[string]*watch
	// finals: the last state of instances that a retention policy purged
	// here, so that a waiter that wakes after the purge still gets the
	// ending it waited for.
	finals map[string]finalState
}

type finalState struct {
	st *protos.WorkflowState
	at time.Time
}

// rememberFinal keeps st, the state of id as a retention purge deletes it,
// for finalKept.
func (w *watchers) rememberFinal(id string, st *protos.WorkflowState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	for k, f := range w.finals {
		if now.Sub(f.at) > finalKept {
			delete(w.finals, k)
		}
	}
	if w.finals == nil {
		w.finals = map[string]finalState{}
	}
	w.finals[id] = finalState{st: st, at: now}
}

// final is a copy of the state rememberFinal kept for id, or nil.
func (w *watchers) final(id string) *protos.WorkflowState {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.finals[id]
	if !ok || time.Since(f.at) > finalKept {
		return nil
	}
	return proto.Clone(f.st).(*protos.WorkflowState)
}

// watch is what the waiters of one instance share: a channel closed at
// the instance's next change (then replaced), and the instance's state as
// of its last change here, so that waiters need not read it back from the
// store.
type watch struct {
	ch chan struct{}
	st *protos.WorkflowState // nil: not known (the instance was purged, or no change yet)
	n  int                   // waiters subscribed
}

// subscription is one waiter's hold on an instance's changes.
type subscription struct {
	w  *watchers
	id string
	x  *watch
}

// subscribe starts following id's changes here; call release once done.
func (w *watchers) subscribe(id string) *subscription {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]*watch{}
	}
	x := w.m[id]
	if x == nil {
		x = &watch{ch: make(chan struct{})}
		w.m[id] = x
	}
	x.n++
	return &subscription{w: w, id: id, x: x}
}

// next returns the channel closed at the next change from now, and a copy
// of the state the last change here left (nil if not known).
func (s *subscription) next() (<-chan struct{}, *protos.WorkflowState) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	var st *protos.WorkflowState
	if s.x.st != nil {
		st = proto.Clone(s.x.st).(*protos.WorkflowState)
	}
	return s.x.ch, st
}

// release ends the subscription; a second call does nothing.
func (s *subscription) release() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.x == nil {
		return
	}
	s.x.n--
	if s.x.n == 0 && s.w.m[s.id] == s.x {
		delete(s.w.m, s.id)
	}
	s.x = nil
}

// notify wakes the waiters of id. state, when not nil, is called (only if
// someone waits) for the instance's state after the change; nil tells that
// it is not known (purged), and the waiters read the store.
func (w *watchers) notify(id string, state func() *protos.WorkflowState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	x := w.m[id]
	if x == nil {
		return
	}
	x.st = nil
	if state != nil {
		if st := state(); st != nil {
			x.st = proto.Clone(st).(*protos.WorkflowState)
		}
	}
	close(x.ch)
	x.ch = make(chan struct{})
}
