package actors

import (
	"context"
	"sync"
)

// turnLock gives an actor one turn at a time. With reentrancy a call that
// carries the reentrancy ID of the turn in progress joins it (a nested
// call from the actor itself, through any number of actors), up to
// maxDepth nested calls; other calls wait in arrival order.
type turnLock struct {
	reentrant bool
	maxDepth  int

	mu      sync.Mutex
	holder  string // reentrancy ID of the turn in progress
	depth   int    // calls inside it
	waiters []*turnWaiter
	closed  bool
}

type turnWaiter struct {
	id      string
	granted chan struct{}
	err     error
}

func newTurnLock(reentrant bool, maxDepth int) *turnLock {
	return &turnLock{reentrant: reentrant, maxDepth: maxDepth}
}

// acquire waits for the turn of a call with reentrancy ID id (unique per
// call when reentrancy is off) and returns its release.
func (l *turnLock) acquire(ctx context.Context, id string) (func(), error) {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, ErrActorClosed
	case l.depth == 0:
		l.holder, l.depth = id, 1
		l.mu.Unlock()
		return l.releaseOnce(), nil
	case l.reentrant && id == l.holder:
		if l.depth >= l.maxDepth {
			l.mu.Unlock()
			return nil, ErrMaxStackDepth
		}
		l.depth++
		l.mu.Unlock()
		return l.releaseOnce(), nil
	}
	w := &turnWaiter{id: id, granted: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	select {
	case <-w.granted:
		if w.err != nil {
			return nil, w.err
		}
		return l.releaseOnce(), nil
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-w.granted: // granted meanwhile: give the turn back
			l.mu.Unlock()
			if w.err == nil {
				l.release()
			}
		default:
			for i, x := range l.waiters {
				if x == w {
					l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
					break
				}
			}
			l.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

func (l *turnLock) releaseOnce() func() {
	var once sync.Once
	return func() { once.Do(l.release) }
}

// release ends one call; the last call of a turn hands the turn to the
// next waiter and to every waiter sharing its reentrancy ID.
func (l *turnLock) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.depth--
	if l.depth > 0 {
		return
	}
	l.holder = ""
	if len(l.waiters) == 0 {
		return
	}
	next := l.waiters[0]
	l.holder = next.id
	rest := l.waiters[:0]
	for _, w := range l.waiters {
		if w == next || (l.reentrant && w.id == next.id && l.depth < l.maxDepth) {
			l.depth++
			close(w.granted)
			continue
		}
		rest = append(rest, w)
	}
	clear(l.waiters[len(rest):])
	l.waiters = rest
}

// close refuses new calls and fails the waiting ones; the turn in
// progress runs on.
func (l *turnLock) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, w := range l.waiters {
		w.err = ErrActorClosed
		close(w.granted)
	}
	l.waiters = nil
}

// busy reports whether a turn is in progress or waited for.
func (l *turnLock) busy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.depth > 0 || len(l.waiters) > 0
}
