package placement

import (
	"context"
	"sync"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc/peer"
)

// Operations of a dissemination round, as sent in PlacementOrder.
const (
	opLock   = "lock"
	opUpdate = "update"
	opUnlock = "unlock"
)

// conn is one host's ReportDaprStatus stream. Its handler goroutine waits
// on ctx; the namespace loop starts its receive and send goroutines when
// it admits the stream, and owns the fields under "loop state".
type conn struct {
	id     uint64
	ns     string
	first  *placementv1.Host
	stream placementv1.Placement_ReportDaprStatusServer
	ctx    context.Context
	cancel context.CancelCauseFunc
	addr   string

	// loop state
	state          placementv1.HostOperation // the phase this host last acknowledged
	hasActors      bool
	locked         *uint64 // the version of the last lock sent
	receivingTable *uint64 // a one-shot table push in flight, whose acks are not part of a round

	mu    sync.Mutex
	queue []*placementv1.PlacementOrder
	wake  chan struct{}
}

func newConn(id uint64, first *placementv1.Host, stream placementv1.Placement_ReportDaprStatusServer) *conn {
	ctx, cancel := context.WithCancelCause(stream.Context())
	addr := "unknown"
	if p, ok := peer.FromContext(stream.Context()); ok {
		addr = p.Addr.String()
	}
	return &conn{id: id, ns: first.GetNamespace(), first: first, stream: stream, ctx: ctx, cancel: cancel, addr: addr,
		state: placementv1.HostOperation_REPORT, wake: make(chan struct{}, 1)}
}

// send queues an order; the send goroutine writes it, so the namespace
// loop never waits for a slow host.
func (c *conn) send(o *placementv1.PlacementOrder) {
	c.mu.Lock()
	c.queue = append(c.queue, o)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendLoop writes queued orders until the stream ends.
func (c *conn) sendLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, o := range q {
			if err := c.stream.Send(o); err != nil {
				c.cancel(err)
				return
			}
		}
	}
}

// recvLoop reads the host's reports and acknowledgements, checks each as
// the first, and hands them to the namespace loop.
func (c *conn) recvLoop(authorize func(placementv1.Placement_ReportDaprStatusServer, *placementv1.Host) error, deliver func(*placementv1.Host)) {
	for {
		h, err := c.stream.Recv()
		if err == nil {
			err = authorize(c.stream, h)
		}
		if err != nil {
			c.cancel(err)
			return
		}
		deliver(h)
	}
}
