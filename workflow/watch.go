package workflow

import "sync"

// watchers wakes the waiters of one instance when it changes on this
// host, so that a change wakes only those who wait for that instance
// (100 clients waiting for 100 instances no longer reload all 100 on
// every change of any).
type watchers struct {
	mu sync.Mutex
	m  map[string]*watch
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

// waiting is the number of instances with waiters (tests).
func (w *watchers) waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}
