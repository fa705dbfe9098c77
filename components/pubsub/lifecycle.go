package pubsub

import (
	"context"
	"sync"
)

// Lifecycle is the stop-and-wait part every broker shares: Close runs once,
// stops the goroutines started with Go (their context ends) and waits for
// them and for the work held with Enter, so handlers already running finish
// before the broker releases its connections.
//
// The zero value is ready to use. Lifecycle has its own lock: a broker
// guards its own state (subscriptions, pending messages) with its own, and
// only asks Lifecycle whether it is closing.
type Lifecycle struct {
	mu     sync.Mutex
	closed bool
	ctx    context.Context // ends when Close begins; made on first use
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// init makes the stop context; l.mu must be held.
func (l *Lifecycle) init() {
	if l.ctx == nil {
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
}

// Enter holds the broker open for one more piece of work, which Close waits
// for until Exit is called. It reports false, holding nothing, once Close
// has begun.
func (l *Lifecycle) Enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.init()
	l.wg.Add(1)
	return true
}

// Exit releases what one successful Enter held.
func (l *Lifecycle) Exit() { l.wg.Done() }

// Go runs fn in a goroutine that Close waits for. fn's context ends when
// parent does or when Close begins. Go reports false, and does not run fn,
// once Close has begun.
func (l *Lifecycle) Go(parent context.Context, fn func(ctx context.Context)) bool {
	if !l.Enter() {
		return false
	}
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(l.ctx, cancel)
	go func() {
		defer l.Exit()
		defer cancel()
		defer stop()
		fn(ctx)
	}()
	return true
}

// Stopping returns a channel that is closed when Close begins.
func (l *Lifecycle) Stopping() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	return l.ctx.Done()
}

// Closed reports whether Close has begun.
func (l *Lifecycle) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops the goroutines started with Go and waits for them and for
// every Enter not yet matched by Exit. It reports whether this call was the
// first: only that one should go on to release the broker's connections.
func (l *Lifecycle) Close() bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	l.init()
	l.cancel()
	l.mu.Unlock()
	l.wg.Wait()
	return true
}
