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

// watch is the channel the waiters of one instance share.
type watch struct {
	ch chan struct{} // closed at the instance's next change
	n  int           // waiters holding ch
}

// watch returns a channel closed at id's next change here, and a release
// to call once the caller stops waiting on it.
func (w *watchers) watch(id string) (<-chan struct{}, func()) {
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
	var once sync.Once
	return x.ch, func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			x.n--
			if x.n == 0 && w.m[id] == x {
				delete(w.m, id)
			}
		})
	}
}

// notify wakes the waiters of id.
func (w *watchers) notify(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if x := w.m[id]; x != nil {
		close(x.ch)
		delete(w.m, id)
	}
}
