package workflow

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

// errNoWorker: no worker connected within the wait; the work stays queued
// in the instance and is retried when one connects.
var errNoWorker = errors.New("no workflow worker is connected: the app has not started its workflow runtime")

// worker is one open GetWorkItems stream.
type worker struct {
	items chan *protos.WorkItem
	done  chan struct{}
}

// workers are the app's connected work-item streams and the work items
// they were sent and have not answered yet.
type workers struct {
	mu      sync.Mutex
	list    []*worker
	next    int
	joined  chan struct{} // closed and replaced when a worker connects
	pending map[string]*pendingItem

	// closing ends every stream, open or opened later (closeStreams): the
	// server they are on is stopping.
	closing   chan struct{}
	closeOnce sync.Once
}

type pendingItem struct {
	w      *worker
	result chan proto.Message
}

func newWorkers() *workers {
	return &workers{joined: make(chan struct{}), pending: map[string]*pendingItem{}, closing: make(chan struct{})}
}

// closeStreams ends the streams: their GetWorkItems calls return.
func (ws *workers) closeStreams() {
	ws.closeOnce.Do(func() { close(ws.closing) })
}

func (ws *workers) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.list)
}

// add registers a stream; remove (returned) unregisters it and hands its
// unanswered items to the next worker.
func (ws *workers) add() (*worker, func()) {
	w := &worker{items: make(chan *protos.WorkItem), done: make(chan struct{})}
	ws.mu.Lock()
	ws.list = append(ws.list, w)
	close(ws.joined)
	ws.joined = make(chan struct{})
	ws.mu.Unlock()
	return w, func() {
		ws.mu.Lock()
		for i, x := range ws.list {
			if x == w {
				ws.list = append(ws.list[:i], ws.list[i+1:]...)
				break
			}
		}
		ws.mu.Unlock()
		close(w.done)
	}
}

// pick returns a worker round-robin, or the channel closed when one joins.
func (ws *workers) pick() (*worker, <-chan struct{}) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.list) == 0 {
		return nil, ws.joined
	}
	ws.next = (ws.next + 1) % len(ws.list)
	return ws.list[ws.next], nil
}

// dispatch sends item to a worker and returns its answer (the message
// complete was called with for key). A worker that disconnects before
// answering gets its item sent to another. Without a worker for
// waitWorker, it returns errNoWorker (waitWorker < 0: wait until ctx ends).
func (ws *workers) dispatch(ctx context.Context, key string, item *protos.WorkItem, waitWorker time.Duration) (proto.Message, error) {
	return ws.dispatchKeep(ctx, key, item, waitWorker, false)
}

// dispatchKeep is dispatch; with keep, an item a worker took is waited for
// past ctx's end, until the worker answers or disconnects (an activity
// runs on when the instance's sidecar that asked for it stops). When the
// worker that took the item disconnects with no other worker left,
// errNoWorker is returned at once (the work runs again when a worker
// connects; the sidecar may be stopping).
func (ws *workers) dispatchKeep(ctx context.Context, key string, item *protos.WorkItem, waitWorker time.Duration, keep bool) (proto.Message, error) {
	var deadline <-chan time.Time
	if waitWorker >= 0 {
		t := time.NewTimer(waitWorker)
		defer t.Stop()
		deadline = t.C
	}
	for {
		w, joined := ws.pick()
		if w == nil {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-deadline:
				return nil, errNoWorker
			case <-joined:
				continue
			}
		}
		p := &pendingItem{w: w, result: make(chan proto.Message, 1)}
		ws.mu.Lock()
		ws.pending[key] = p
		ws.mu.Unlock()
		select {
		case w.items <- item:
		case <-w.done:
			ws.forget(key, p)
			continue
		case <-ctx.Done():
			ws.forget(key, p)
			return nil, ctx.Err()
		}
		taken := ctx.Done()
		if keep {
			taken = nil
		}
		select {
		case res := <-p.result:
			return res, nil
		case <-w.done:
			ws.forget(key, p)
			// The answer may have raced the disconnect.
			select {
			case res := <-p.result:
				return res, nil
			default:
			}
			if ws.count() == 0 {
				// The last worker left with the item: the caller parks
				// the work until one connects, rather than holding its
				// actor's turn (the engine's actors are being
				// deactivated: a turn that went on would run the item
				// on the next worker and then find its actor gone).
				return nil, errNoWorker
			}
		case <-taken:
			ws.forget(key, p)
			return nil, ctx.Err()
		}
	}
}

func (ws *workers) forget(key string, p *pendingItem) {
	ws.mu.Lock()
	if ws.pending[key] == p {
		delete(ws.pending, key)
	}
	ws.mu.Unlock()
}

// complete delivers a worker's answer; false when nothing waits for key.
func (ws *workers) complete(key string, res proto.Message) bool {
	ws.mu.Lock()
	p, ok := ws.pending[key]
	delete(ws.pending, key)
	ws.mu.Unlock()
	if !ok {
		return false
	}
	p.result <- res
	return true
}
