package placement

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Events of a namespace loop.
type (
	evAdd    struct{ c *conn }
	evReport struct {
		c *conn
		h *placementv1.Host
	}
	evClose struct {
		c   *conn
		err error
	}
	evTimeout  struct{ version uint64 }
	evCoalesce struct{}
	evState    struct {
		reply chan<- *placementv1.StatePlacementTable
	}
)

// nsOptions are what every namespace loop shares.
type nsOptions struct {
	replicationFactor int64
	timeout           time.Duration // dissemination round bound; 0: none
	coalesce          time.Duration // post-round window; 0: none
	authorize         func(placementv1.Placement_ReportDaprStatusServer, *placementv1.Host) error
	record            func(ns string, runtimes, actorRuntimes int)
	disseminated      func(ns string, d time.Duration)
	wg                *sync.WaitGroup // the streams' goroutines
	log               *slog.Logger
}

// namespace disseminates the table of one namespace: hosts are admitted
// and removed between rounds, and each round takes every host through
// lock, update (the new table) and unlock, moving on only when all have
// acknowledged the phase. A host that has not within the dissemination
// timeout is disconnected and the round starts again without it.
//
// All its state is owned by its one goroutine (run); other goroutines
// only enqueue events.
type namespace struct {
	name string
	o    *nsOptions

	mu     sync.Mutex
	events []any
	wake   chan struct{}
	done   chan struct{} // closed when run returns

	streams       map[uint64]*conn
	store         *store
	version       uint64
	op            placementv1.HostOperation // REPORT when no round runs
	inTarget      int                       // hosts that acknowledged the current phase
	started       time.Time
	waitingAdd    []*conn
	waitingDelete []uint64
	roundTimer    *time.Timer
	coalesceTimer *time.Timer
}

func newNamespace(name string, o *nsOptions) *namespace {
	return &namespace{name: name, o: o, wake: make(chan struct{}, 1), done: make(chan struct{}), streams: map[uint64]*conn{},
		store: newStore(o.replicationFactor), op: placementv1.HostOperation_REPORT}
}

func (n *namespace) enqueue(e any) {
	n.mu.Lock()
	n.events = append(n.events, e)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run handles events until ctx ends, then disconnects every host with
// context.Cause(ctx).
func (n *namespace) run(ctx context.Context) {
	defer close(n.done)
	defer n.shutdown(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		evs := n.events
		n.events = nil
		n.mu.Unlock()
		for _, e := range evs {
			n.handle(e)
		}
	}
}

func (n *namespace) handle(e any) {
	switch e := e.(type) {
	case evAdd:
		n.add(e.c)
	case evReport:
		n.report(e.c, e.h)
	case evClose:
		n.close(e.c, e.err)
	case evTimeout:
		n.timeout(e.version)
	case evCoalesce:
		n.coalesceTimer = nil
		if n.op == placementv1.HostOperation_REPORT {
			n.next(false)
		}
	case evState:
		e.reply <- n.store.state(n.version)
	}
}

func (n *namespace) shutdown(ctx context.Context) {
	err := context.Cause(ctx)
	if n.roundTimer != nil {
		n.roundTimer.Stop()
	}
	if n.coalesceTimer != nil {
		n.coalesceTimer.Stop()
	}
	for _, c := range n.streams {
		c.cancel(err)
	}
	for _, c := range n.waitingAdd {
		c.cancel(err)
	}
	n.mu.Lock()
	for _, e := range n.events {
		switch e := e.(type) {
		case evAdd:
			e.c.cancel(err)
		case evState:
			e.reply <- n.store.state(n.version)
		}
	}
	n.events = nil
	n.mu.Unlock()
	clear(n.streams)
	n.o.record(n.name, 0, 0)
}

// hold queues the hosts that join within d and admits them together when
// it ends; called before run.
func (n *namespace) hold(d time.Duration) {
	n.coalesceTimer = time.AfterFunc(d, func() { n.enqueue(evCoalesce{}) })
}

func (n *namespace) idle() bool {
	return n.op == placementv1.HostOperation_REPORT && n.coalesceTimer == nil
}

// add admits a new stream, or queues it while a round (or the coalesce
// window after one) runs.
func (n *namespace) add(c *conn) {
	n.waitingAdd = append(n.waitingAdd, c)
	if !n.idle() {
		return
	}
	n.waitingDelete = append(n.waitingDelete, n.store.orphans(n.active)...)
	n.next(false)
}

func (n *namespace) active(id uint64) bool {
	_, ok := n.streams[id]
	return ok
}

// next applies the queued removals and admissions; when the table changed
// (or force), it starts a round. Admitted hosts that serve no actors and
// get no round receive the current table on their own.
func (n *namespace) next(force bool) {
	changed := force
	for _, id := range n.waitingDelete {
		n.store.delete(id)
		changed = true
	}
	n.waitingDelete = nil
	admitted := n.waitingAdd
	n.waitingAdd = nil
	for _, c := range admitted {
		n.start(c)
		if n.store.set(c.id, c.first) {
			changed = true
		}
	}
	n.recordCounts()
	if changed && len(n.streams) > 0 {
		n.startRound()
		return
	}
	for _, c := range admitted {
		if !n.store.has(c.id) {
			n.pushTable(c)
		}
	}
}

// start registers the stream and starts its goroutines.
func (n *namespace) start(c *conn) {
	c.state = placementv1.HostOperation_REPORT
	c.hasActors = len(c.first.GetEntities()) > 0
	n.streams[c.id] = c
	n.o.wg.Add(2)
	go func() {
		defer n.o.wg.Done()
		c.sendLoop()
	}()
	go func() {
		defer n.o.wg.Done()
		c.recvLoop(n.o.authorize, func(h *placementv1.Host) { n.enqueue(evReport{c: c, h: h}) })
	}()
	n.o.log.Debug("host admitted", "namespace", n.name, "app_id", c.first.GetId(), "host", c.first.GetName(),
		"actor_types", c.first.GetEntities(), "stream", c.id)
}

func (n *namespace) recordCounts() {
	actors := 0
	for _, c := range n.streams {
		if c.hasActors {
			actors++
		}
	}
	n.o.record(n.name, len(n.streams), actors)
}

func (n *namespace) startRound() {
	n.version++
	n.started = time.Now()
	if n.roundTimer != nil {
		n.roundTimer.Stop()
	}
	if n.o.timeout > 0 {
		v := n.version
		n.roundTimer = time.AfterFunc(n.o.timeout, func() { n.enqueue(evTimeout{version: v}) })
	}
	n.op = placementv1.HostOperation_LOCK
	n.inTarget = 0
	for _, c := range n.streams {
		c.state = placementv1.HostOperation_REPORT
		c.receivingTable = nil
		n.lock(c)
	}
}

func (n *namespace) lock(c *conn) {
	if c.locked != nil && *c.locked > n.version {
		return
	}
	v := n.version
	c.locked = &v
	c.send(&placementv1.PlacementOrder{Operation: opLock, Version: v})
}

func (n *namespace) sendIfLocked(c *conn, o *placementv1.PlacementOrder) {
	if c.locked != nil && *c.locked == n.version {
		c.send(o)
	}
}

// pushTable sends the current table to one host in a round of its own
// (lock, update, unlock), outside the namespace's rounds: a host serving
// no actor types needs it to call actors.
func (n *namespace) pushTable(c *conn) {
	v := n.version
	c.receivingTable = &v
	c.send(&placementv1.PlacementOrder{Operation: opLock, Version: v})
	c.send(&placementv1.PlacementOrder{Operation: opUpdate, Version: v, Tables: n.store.tables(v)})
	c.send(&placementv1.PlacementOrder{Operation: opUnlock, Version: v})
}

// report handles a message of a host: a new report of its actor types, or
// the acknowledgement of a phase.
func (n *namespace) report(c *conn, h *placementv1.Host) {
	if _, ok := n.streams[c.id]; !ok {
		return
	}
	op := h.GetOperation()
	if op == placementv1.HostOperation_UNKNOWN {
		op = n.op // hosts before API level 20 send no operation
	}
	if h.Version != nil && h.GetVersion() < n.version {
		return // an acknowledgement of an older round
	}
	if c.receivingTable != nil && op != placementv1.HostOperation_REPORT && h.Version != nil && h.GetVersion() == *c.receivingTable {
		if op == placementv1.HostOperation_UNLOCK {
			c.receivingTable = nil
		}
		return
	}
	if op == placementv1.HostOperation_REPORT {
		if n.store.set(c.id, h) {
			c.hasActors = len(h.GetEntities()) > 0
			n.recordCounts()
			n.startRound()
		} else if !n.store.has(c.id) && n.op == placementv1.HostOperation_REPORT {
			n.pushTable(c)
		}
		return
	}
	if op != n.op {
		return
	}
	if c.state != op {
		c.state = op
		n.inTarget++
	}
	n.advance()
}

// advance moves the round on while every host has acknowledged its phase.
func (n *namespace) advance() {
	for n.op != placementv1.HostOperation_REPORT && n.inTarget >= len(n.streams) {
		n.inTarget = 0
		switch n.op {
		case placementv1.HostOperation_LOCK:
			n.op = placementv1.HostOperation_UPDATE
			tables := n.store.tables(n.version)
			for _, c := range n.streams {
				n.sendIfLocked(c, &placementv1.PlacementOrder{Operation: opUpdate, Version: n.version, Tables: tables})
			}
		case placementv1.HostOperation_UPDATE:
			n.op = placementv1.HostOperation_UNLOCK
			for _, c := range n.streams {
				n.sendIfLocked(c, &placementv1.PlacementOrder{Operation: opUnlock, Version: n.version})
			}
		case placementv1.HostOperation_UNLOCK:
			n.op = placementv1.HostOperation_REPORT
			if n.roundTimer != nil {
				n.roundTimer.Stop()
				n.roundTimer = nil
			}
			took := time.Since(n.started)
			n.o.disseminated(n.name, took)
			n.o.log.Debug("table disseminated", "namespace", n.name, "version", n.version, "hosts", len(n.streams), "took", took)
			n.waitingDelete = append(n.waitingDelete, n.store.orphans(n.active)...)
			if n.o.coalesce > 0 {
				n.coalesceTimer = time.AfterFunc(n.o.coalesce, func() { n.enqueue(evCoalesce{}) })
				return
			}
			n.next(false)
			return
		}
	}
}

// close removes a stream that ended.
func (n *namespace) close(c *conn, err error) {
	if i := slices.Index(n.waitingAdd, c); i >= 0 {
		n.waitingAdd = slices.Delete(n.waitingAdd, i, i+1)
		return
	}
	s, ok := n.streams[c.id]
	if !ok || s != c {
		return
	}
	n.o.log.Debug("host disconnected", "namespace", n.name, "app_id", c.first.GetId(), "host", c.first.GetName(), "stream", c.id, "error", err)
	if c.state == n.op && n.op != placementv1.HostOperation_REPORT {
		n.inTarget--
	}
	delete(n.streams, c.id)
	c.cancel(err)
	n.recordCounts()
	if n.store.has(c.id) {
		n.waitingDelete = append(n.waitingDelete, c.id)
	}
	switch {
	case n.op != placementv1.HostOperation_REPORT:
		n.advance()
	case n.coalesceTimer == nil && len(n.waitingDelete) > 0:
		n.next(false)
	}
}

// timeout ends a round that took too long: the hosts that did not
// acknowledge its current phase are disconnected and a new round starts
// with the others.
func (n *namespace) timeout(version uint64) {
	if version != n.version || n.op == placementv1.HostOperation_REPORT {
		return
	}
	err := status.Errorf(codes.DeadlineExceeded, "dissemination timeout after %s for version %d", n.o.timeout, version)
	n.o.log.Warn("dissemination timeout; disconnecting the hosts that did not answer", "namespace", n.name, "version", version, "phase", n.op.String())
	for id, c := range n.streams {
		if c.state == n.op {
			continue
		}
		n.o.log.Warn("disconnecting non-responding host", "namespace", n.name, "app_id", c.first.GetId(), "host", c.first.GetName(),
			"acknowledged", c.state.String(), "expected", n.op.String())
		n.store.delete(id)
		delete(n.streams, id)
		c.cancel(err)
	}
	n.op = placementv1.HostOperation_REPORT
	n.inTarget = 0
	n.roundTimer = nil
	n.next(true)
}
