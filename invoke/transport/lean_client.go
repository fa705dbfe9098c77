package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/internal/rawio"
)

// errBodyClosed is what reading an answer returns after Close.
var errBodyClosed = errors.New("lean transport: body closed")

// maxIdleLean caps the idle lean connections kept per peer.
const maxIdleLean = 64

// leanPeer is the lean side of the pool for one address.
type leanPeer struct {
	// h2Only: the peer offered neither lean version (a daprd); use gRPC.
	h2Only atomic.Bool
	// noActors: the last connection dialed negotiated LeanALPNv2 (an
	// earlier Tandem): actor calls use gRPC. A later dial that negotiates
	// LeanALPN (the peer was upgraded) clears it.
	noActors atomic.Bool
	mu       sync.Mutex
	idle     []*LeanConn
}

// ErrStaleConn marks a failure of a reused idle connection before any
// answer came: the peer closed it between calls (a restart, an idle
// timeout) and never saw the request, so it is safe to send again on a
// fresh connection. It is codes.Unavailable.
var ErrStaleConn = errors.New("lean transport: idle connection to sidecar was closed before the call was answered")

// Lean returns a connection to addr that speaks the lean transport, reused
// or dialed, or (nil, nil) when the pool does not use it (plaintext) or
// the peer offers only h2 (a daprd): then use Get and Dapr's gRPC. Dial
// failures are codes.Unavailable. A connection carries one call at a
// time; Start one and Close it.
func (p *Pool) Lean(ctx context.Context, addr string) (*LeanConn, error) {
	return p.leanConn(ctx, addr, false, false)
}

// LeanReplayable is Lean for a call that its caller sends again on a fresh
// connection when the reused one turns out closed (IsStale): a connection
// used less than trustRecent ago is handed out without first asking the
// kernel whether the peer closed it, a system call per call otherwise.
func (p *Pool) LeanReplayable(ctx context.Context, addr string) (*LeanConn, error) {
	return p.leanConn(ctx, addr, false, true)
}

// trustRecent is how recently a connection must have been used for
// LeanReplayable to reuse it unchecked. The callee closes a connection
// after leanIdleTimeout without calls, or as it stops; within a second of
// a call that is a stop, whose closed connections fail the next call
// before anything is answered, and a replayable call is sent again.
const trustRecent = time.Second

// LeanActor is LeanReplayable for an actor call (its request is in
// memory): it returns (nil, nil) also when the peer speaks only
// LeanALPNv2, which has no actor calls (then use gRPC's CallActor). A
// connection it returns has Actors true.
func (p *Pool) LeanActor(ctx context.Context, addr string) (*LeanConn, error) {
	return p.leanConn(ctx, addr, true, true)
}

func (p *Pool) leanConn(ctx context.Context, addr string, actors, replayable bool) (*LeanConn, error) {
	if p.leanTLS == nil {
		return nil, nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	lp := p.lean[addr]
	if lp == nil {
		lp = &leanPeer{}
		p.lean[addr] = lp
	}
	p.mu.Unlock()
	if lp.h2Only.Load() || actors && lp.noActors.Load() {
		return nil, nil
	}
	now := time.Now()
	lp.mu.Lock()
	for len(lp.idle) > 0 {
		c := lp.idle[len(lp.idle)-1]
		lp.idle = lp.idle[:len(lp.idle)-1]
		if actors && !c.actors {
			// Made before the peer was upgraded; it still carries
			// invocations, but this call needs another.
			_ = c.conn.Close()
			continue
		}
		idle := now.Sub(c.lastUsed)
		if idle < leanClientIdle && c.fr.br.Buffered() == 0 && (replayable && idle < trustRecent || rawio.IdleOpen(c.conn.NetConn())) {
			lp.mu.Unlock()
			c.reused = true
			return c, nil
		}
		// Idle too long, or the callee closed it or said goaway while it
		// was idle (a restart): a call on it would fail.
		_ = c.conn.Close()
	}
	lp.mu.Unlock()

	raw, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, grpcstatus.Errorf(codes.Unavailable, "connect to sidecar at %s: %v", addr, err)
	}
	conn := tls.Client(rawio.Wrap(raw), p.leanTLS)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		if ctx.Err() != nil {
			return nil, grpcstatus.FromContextError(ctx.Err()).Err()
		}
		return nil, grpcstatus.Errorf(codes.Unavailable, "TLS handshake with sidecar at %s: %v", addr, err)
	}
	proto := conn.ConnectionState().NegotiatedProtocol
	if proto != LeanALPN && proto != LeanALPNv2 {
		_ = conn.Close()
		lp.h2Only.Store(true)
		p.log.Debug("sidecar offers only h2; using Dapr's gRPC", "address", addr)
		return nil, nil
	}
	c := &LeanConn{
		pool: p, peer: lp, conn: conn, actors: proto == LeanALPN,
		fr: frameReader{br: bufio.NewReaderSize(conn, leanReadBuffer), max: p.maxSize},
		fw: frameWriter{w: conn},
	}
	lp.noActors.Store(!c.actors)
	if actors && !c.actors {
		p.log.Debug("sidecar speaks tandem-invoke/2; actor calls use Dapr's gRPC", "address", addr)
		c.lastUsed = time.Now()
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		lp.mu.Lock()
		if !closed && len(lp.idle) < maxIdleLean {
			// Kept for the invocations to that peer.
			lp.idle = append(lp.idle, c)
			c = nil
		}
		lp.mu.Unlock()
		if c != nil {
			_ = conn.Close()
		}
		return nil, nil
	}
	return c, nil
}

// LeanConn is a lean connection to another sidecar, lent for one call.
type LeanConn struct {
	pool     *Pool
	peer     *leanPeer
	conn     *tls.Conn
	fr       frameReader
	fw       frameWriter
	reused   bool
	lastUsed time.Time
	// actors: the connection negotiated LeanALPN and may carry FlagActor.
	actors bool
	// goAway: the callee said it closes the connection after this call
	// (set by the answer side, read by the request side too).
	goAway atomic.Bool

	// The context watch of the call in progress (watch): timer is made
	// with the first call; watchMu guards watched (the call, nil between
	// calls) and stopWatch (nil before the watch starts).
	timer     *time.Timer
	watchMu   sync.Mutex
	watched   *ClientCall
	stopWatch func() bool
}

// Actors reports whether the connection may carry actor calls
// (FlagActor): it negotiated LeanALPN, not LeanALPNv2.
func (c *LeanConn) Actors() bool { return c.actors }

// Start begins a call: head is the caller's head (the invoke layer's
// encoding), contentLength the request body's size (-1: unknown), flags
// FlagStream, FlagActor (only if Actors) or 0; the context's deadline goes
// with it. The call owns the
// connection until Close.
func (c *LeanConn) Start(ctx context.Context, contentLength int64, flags byte, head []byte) (*ClientCall, error) {
	if flags&FlagActor != 0 && !c.actors {
		// A tandem-invoke/2 callee would take it for an invocation.
		c.Discard()
		return nil, grpcstatus.Error(codes.Internal, "lean transport: actor call on a tandem-invoke/2 connection (get it with Pool.LeanActor)")
	}
	if err := ctx.Err(); err != nil {
		// The watch would only see it later.
		c.Discard()
		return nil, grpcstatus.FromContextError(err).Err()
	}
	call := &ClientCall{c: c, ctx: ctx}
	var timeout int64
	watchIn := WatchAfter
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		timeout = max(int64(left), 1)
		watchIn = min(watchIn, max(left, 0))
	}
	n := headPrefixLen + len(head)
	if len(c.fw.b())+frameHeaderLen+n > writeBufferMax {
		if err := c.fw.flush(); err != nil {
			return nil, call.fail(err)
		}
	}
	c.fw.header(frameHead, n)
	b := binary.BigEndian.AppendUint64(*c.fw.buf, uint64(timeout))
	b = binary.BigEndian.AppendUint64(b, uint64(contentLength))
	b = append(b, flags)
	*c.fw.buf = append(b, head...)
	call.body = bodyReader{fr: &c.fr, owner: call}
	c.watch(call, watchIn)
	return call, nil
}

// WatchAfter is how long a call runs before its context is watched: a
// context cancelled earlier (not by its deadline, which is kept to the
// moment) cuts the call at most this late. A quick call allocates nothing
// for the watch.
const WatchAfter = 10 * time.Millisecond

// watch arms the context watch of call, the connection's call in
// progress, to start in d.
func (c *LeanConn) watch(call *ClientCall, d time.Duration) {
	c.watchMu.Lock()
	c.watched = call
	c.watchMu.Unlock()
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.startWatch)
		return
	}
	c.timer.Reset(d)
}

// startWatch watches the context of the call in progress, if any: when
// it ends, the call is cancelled and its connection's I/O cut. The timer
// calls it; one that fires late for an earlier call watches the current
// one early, which changes nothing.
func (c *LeanConn) startWatch() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	call := c.watched
	if call == nil || c.stopWatch != nil {
		return
	}
	c.stopWatch = context.AfterFunc(call.ctx, func() {
		call.canceled.Store(true)
		_ = c.conn.SetDeadline(time.Unix(1, 0))
	})
}

// unwatch ends the watch of the call in progress. It reports false when
// the watch cancelled the call.
func (c *LeanConn) unwatch() bool {
	c.timer.Stop()
	c.watchMu.Lock()
	stop := c.stopWatch
	c.watched, c.stopWatch = nil, nil
	c.watchMu.Unlock()
	return stop == nil || stop()
}

// ClientCall is one call on a LeanConn. The request side (Write, Flush,
// CloseSend) may run on another goroutine than the answer side (RecvHead,
// Read), one goroutine each.
type ClientCall struct {
	c    *LeanConn
	ctx  context.Context
	body bodyReader

	canceled atomic.Bool
	aborted  atomic.Pointer[error] // why AbortSend gave up the body
	received atomic.Bool           // some of the answer came (read by the request side too)
	sent     atomic.Bool
	sendErr  atomic.Bool
	broken   atomic.Bool
	closed   bool
}

// connFailed is fail, for the answer's bodyReader.
func (cl *ClientCall) connFailed(err error) error { return cl.fail(err) }

// fail turns a connection failure into the call's status error and marks
// the connection unusable.
func (cl *ClientCall) fail(err error) error {
	cl.broken.Store(true)
	if a := cl.aborted.Load(); a != nil {
		return *a
	}
	if cl.canceled.Load() || cl.ctx.Err() != nil {
		if e := cl.ctx.Err(); e != nil {
			return grpcstatus.FromContextError(e).Err()
		}
		return grpcstatus.Error(codes.Canceled, context.Canceled.Error())
	}
	if _, ok := grpcstatus.FromError(err); ok {
		return err
	}
	if (cl.c.reused || cl.c.goAway.Load()) && !cl.received.Load() {
		return grpcstatus.Error(codes.Unavailable, fmt.Errorf("%w: %v", ErrStaleConn, err).Error())
	}
	return grpcstatus.Errorf(codes.Unavailable, "connection to sidecar at %s failed: %v", cl.c.conn.RemoteAddr(), err)
}

// IsStale reports whether err is a call's failure on a reused idle
// connection before any answer (ErrStaleConn): send it again on a fresh
// connection.
func IsStale(err error) bool {
	st, ok := grpcstatus.FromError(err)
	return ok && st.Code() == codes.Unavailable && len(st.Message()) >= len(ErrStaleConn.Error()) &&
		st.Message()[:len(ErrStaleConn.Error())] == ErrStaleConn.Error()
}

// Write buffers p as request body; a full buffer is written out.
func (cl *ClientCall) Write(p []byte) (int, error) {
	if err := cl.c.fw.data(p); err != nil {
		cl.sendErr.Store(true)
		return 0, cl.fail(err)
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (cl *ClientCall) Flush() error {
	if err := cl.c.fw.flush(); err != nil {
		cl.sendErr.Store(true)
		return cl.fail(err)
	}
	return nil
}

// CloseSend ends the request body and writes everything out: a call whose
// body was all written before goes in one write.
func (cl *ClientCall) CloseSend() error {
	if err := cl.c.fw.frame(frameEnd, nil); err != nil {
		cl.sendErr.Store(true)
		return cl.fail(err)
	}
	if err := cl.Flush(); err != nil {
		return err
	}
	cl.sent.Store(true)
	return nil
}

// AbortSend gives up sending the request body because reading it failed
// with err: the connection is closed so the callee never takes a truncated
// body for a whole one, and the answer side returns err.
func (cl *ClientCall) AbortSend(err error) {
	cl.aborted.CompareAndSwap(nil, &err)
	cl.sendErr.Store(true)
	cl.broken.Store(true)
	cl.c.fw.discard()
	_ = cl.c.conn.Close()
}

// RecvHead waits for the answer's head; a failed call returns its status
// error. The head is valid until the first Read.
func (cl *ClientCall) RecvHead() ([]byte, error) {
	typ, payload, err := cl.c.fr.next()
	if err == nil && typ == frameGoAway {
		// Sent while the connection was idle: the callee serves this call
		// and closes the connection.
		// A failure now is the callee closing before it read the call
		// (fail takes it for a stale connection).
		cl.c.goAway.Store(true)
		typ, payload, err = cl.c.fr.next()
	}
	if err != nil {
		return nil, cl.fail(err)
	}
	cl.received.Store(true)
	switch typ {
	case frameHead:
		return payload, nil
	case frameStatus:
		cl.body.done = true
		return nil, decodeStatus(payload)
	}
	return nil, cl.fail(fmt.Errorf("%w: frame type %d before the answer's head", errProtocol, typ))
}

// Read reads the answer's body; a callee that failed after its head ends
// it with the status error.
func (cl *ClientCall) Read(p []byte) (int, error) { return cl.body.Read(p) }

// Ready reports whether the next Read returns without waiting for the
// callee (data, the end or a failure is buffered): a relay of the answer
// flushes its own buffer only when it is not. Call it from the goroutine
// that reads.
func (cl *ClientCall) Ready() bool { return cl.body.ready() }

// Close ends the call. The connection goes back to the pool when the
// whole exchange is complete; otherwise it is closed, which cancels the
// call at the callee.
func (cl *ClientCall) Close() error {
	if cl.closed {
		return nil
	}
	cl.closed = true
	if !cl.body.done && cl.body.err == nil {
		cl.body.err = errBodyClosed
	}
	if !cl.c.unwatch() {
		cl.broken.Store(true)
	}
	c := cl.c
	if cl.broken.Load() || cl.sendErr.Load() || !cl.sent.Load() || !cl.body.done || (cl.body.err != nil && cl.body.err != errBodyClosed) || c.fr.remain > 0 || c.goAway.Load() {
		// A request body may still be being written by another
		// goroutine: closing the connection stops it.
		_ = c.conn.Close()
		return nil
	}
	c.lastUsed = time.Now()
	c.pool.mu.Lock()
	closed := c.pool.closed
	c.pool.mu.Unlock()
	lp := c.peer
	lp.mu.Lock()
	if closed || len(lp.idle) >= maxIdleLean {
		lp.mu.Unlock()
		_ = c.conn.Close()
		return nil
	}
	lp.idle = append(lp.idle, c)
	lp.mu.Unlock()
	return nil
}

// DropIdle closes addr's idle lean connections (after one proved stale,
// the others came from the same server and likely are too).
func (p *Pool) DropIdle(addr string) {
	p.mu.Lock()
	lp := p.lean[addr]
	p.mu.Unlock()
	if lp == nil {
		return
	}
	lp.mu.Lock()
	idle := lp.idle
	lp.idle = nil
	lp.mu.Unlock()
	for _, c := range idle {
		_ = c.conn.Close()
	}
}

func (p *Pool) closeLean() {
	for _, lp := range p.lean {
		lp.mu.Lock()
		for _, c := range lp.idle {
			_ = c.conn.Close()
		}
		lp.idle = nil
		lp.mu.Unlock()
	}
}

var _ io.ReadWriter = (*ClientCall)(nil)

func newDialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
}

// Discard closes a connection that will not carry a call.
func (c *LeanConn) Discard() { _ = c.conn.Close() }
