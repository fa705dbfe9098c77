package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// LeanHandler serves one call of the lean transport. The call's context
// carries the caller's TLS identity as a gRPC peer (peer.FromContext), so
// code written for the gRPC server reads it the same way. A non-nil error
// goes back to the caller as its gRPC status.
type LeanHandler interface {
	ServeLean(ctx context.Context, call *ServerCall) error
}

const (
	// leanIdleTimeout closes a server connection that carried no call for
	// this long (the caller's pool drops its idle ones sooner).
	leanIdleTimeout = 2 * time.Minute
	// leanClientIdle is how long the caller keeps an idle connection.
	leanClientIdle = time.Minute
	// watchAfter is how long a call may run before the server starts
	// watching its connection for the caller going away: quick calls
	// never pay for the watch.
	watchAfter = 2 * time.Millisecond
	// leanReadBuffer is a lean connection's read buffer. A small call's
	// frames fit in it; a larger body is read straight into the reader's
	// buffer (bufio does so for reads at least this long), and a read of
	// the TLS connection copies from the record it has already decrypted,
	// so a smaller buffer costs no system call. Each connection holds one
	// for its life: 16 KiB (a whole record) put ~0.3 MiB into the live
	// heap of a sidecar with ~20 connections under load, and the
	// collector lets the heap grow to 2.5 times the live heap (GOGC=150).
	leanReadBuffer = 4 << 10
)

// LeanServer serves the lean transport on the connections whose TLS
// handshake, done by the internal gRPC server's credentials
// (ServerConfig.Lean), chose LeanALPN or LeanALPNv2. Each connection is served by one
// goroutine that reads a call, runs the handler on it and writes the
// answer.
type LeanServer struct {
	handler LeanHandler
	log     *slog.Logger
	max     int

	mu      sync.Mutex
	conns   map[*leanServerConn]struct{}
	closing bool
	closed  bool // Close: no goaway grace either
	wg      sync.WaitGroup
}

// NewLeanServer returns a server handing calls to h. maxMessageSize bounds
// a call's head (DefaultMaxMessageSize if zero).
func NewLeanServer(h LeanHandler, maxMessageSize int, log *slog.Logger) *LeanServer {
	if maxMessageSize <= 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LeanServer{handler: h, log: log, max: maxMessageSize, conns: map[*leanServerConn]struct{}{}}
}

type leanServerConn struct {
	conn *tls.Conn
	// mu orders Shutdown's wake-up of an idle connection (a read deadline
	// in the past) with the start of a call, so that a call's frames are
	// never cut by it.
	mu   sync.Mutex
	busy bool
}

// serve takes over a handshaken connection; false if the server is closing.
func (s *LeanServer) serve(conn *tls.Conn) bool {
	c := &leanServerConn{conn: conn}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if s.closing {
		// Dialed as the server stops: the caller's first call may be on
		// its way; serve it (goaway first), as a call that crossed the
		// goaway of an idle connection.
		s.mu.Unlock()
		base := connContext(conn)
		cw := newCallWatch()
		s.goAway(base, conn, &frameReader{br: bufio.NewReaderSize(conn, leanReadBuffer), max: s.max}, &frameWriter{w: conn}, cw)
		cw.timer.Stop()
		_ = conn.Close()
		return true
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = conn.Close()
		}()
		s.serveConn(c)
	}()
	return true
}

// Shutdown stops taking calls: idle connections are closed at once, busy
// ones after their call. It returns when all are closed or ctx ends (then
// it closes the rest).
func (s *LeanServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.mu.Lock()
		if !c.busy {
			// Wakes the wait for the next call; a call that just began
			// still finishes (closing is checked after it).
			_ = c.conn.SetReadDeadline(time.Unix(1, 0))
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = s.Close()
		return ctx.Err()
	}
}

// Close closes every connection, calls in flight included, and waits for
// their goroutines.
func (s *LeanServer) Close() error {
	s.mu.Lock()
	s.closing, s.closed = true, true
	for c := range s.conns {
		_ = c.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// connContext is the context every call on conn starts from: its peer
// (address and TLS state, as gRPC's) and its PeerMemo.
func connContext(conn *tls.Conn) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		Addr: conn.RemoteAddr(), LocalAddr: conn.LocalAddr(), AuthInfo: tlsInfo(conn.ConnectionState()),
	})
	return context.WithValue(ctx, peerMemoKey{}, new(PeerMemo))
}

// PeerMemo keeps what a handler derives from a lean connection's peer
// alone (the caller's identity, parsed from its certificate), so that it
// is worked out once per connection rather than once per call.
type PeerMemo struct {
	once sync.Once
	val  any
}

// Do returns what f returned the first time Do was called on m.
func (m *PeerMemo) Do(f func() any) any {
	m.once.Do(func() { m.val = f() })
	return m.val
}

type peerMemoKey struct{}

// PeerMemoFrom returns the PeerMemo of the lean connection a call's ctx
// comes from; nil for a call that did not come over one.
func PeerMemoFrom(ctx context.Context) *PeerMemo {
	m, _ := ctx.Value(peerMemoKey{}).(*PeerMemo)
	return m
}

func (s *LeanServer) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *LeanServer) serveConn(c *leanServerConn) {
	conn := c.conn
	base := connContext(conn)
	fr := &frameReader{br: bufio.NewReaderSize(conn, leanReadBuffer), max: s.max}
	fw := &frameWriter{w: conn}
	cw := newCallWatch()
	defer cw.timer.Stop()
	for {
		if s.isClosing() {
			s.goAway(base, conn, fr, fw, cw)
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(leanIdleTimeout))
		// Wait for the next call without consuming anything: a wake-up
		// (Shutdown) or the idle timeout never cuts a frame.
		if _, err := fr.br.Peek(1); err != nil {
			if isTimeout(err) {
				// Idle too long, or woken by Shutdown.
				s.goAway(base, conn, fr, fw, cw)
				return
			}
			if !errors.Is(err, io.EOF) {
				s.log.Debug("lean connection failed", "remote", conn.RemoteAddr().String(), "error", err)
			}
			return
		}
		c.mu.Lock()
		c.busy = true
		_ = conn.SetReadDeadline(time.Time{})
		c.mu.Unlock()
		typ, payload, err := fr.next()
		if err != nil {
			s.log.Debug("lean connection failed", "remote", conn.RemoteAddr().String(), "error", err)
			return
		}
		if typ != frameHead || len(payload) < headPrefixLen {
			s.log.Debug("lean connection: protocol error", "remote", conn.RemoteAddr().String(), "frame", typ)
			return
		}
		ok := s.serveCall(base, conn, fr, fw, cw, payload)
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
		if !ok {
			return
		}
	}
}

// goAwayGrace is how long a connection stays open after its goaway for a
// call that crossed it (the caller took the idle connection just before).
const goAwayGrace = time.Second

// goAway tells the caller that the connection closes, so it does not send
// another call on it, and serves a call that was already on its way.
func (s *LeanServer) goAway(base context.Context, conn *tls.Conn, fr *frameReader, fw *frameWriter, cw *callWatch) {
	if fw.frame(frameGoAway, nil) != nil || fw.flush() != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Now().Add(goAwayGrace))
	if _, err := fr.br.Peek(1); err != nil {
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	typ, payload, err := fr.next()
	if err != nil || typ != frameHead || len(payload) < headPrefixLen {
		return
	}
	s.serveCall(base, conn, fr, fw, cw, payload)
}

// callWatch is a connection's one timer for watching its calls (one at a
// time): a call does not allocate a timer of its own.
type callWatch struct {
	timer *time.Timer
	mu    sync.Mutex
	call  *ServerCall
}

func newCallWatch() *callWatch {
	cw := &callWatch{}
	cw.timer = time.AfterFunc(time.Hour, cw.fire)
	cw.timer.Stop()
	return cw
}

// start watches call once it has taken watchAfter.
func (cw *callWatch) start(call *ServerCall) {
	cw.mu.Lock()
	cw.call = call
	cw.mu.Unlock()
	cw.timer.Reset(watchAfter)
}

// stop ends call's watch (stopWatch) and lets the connection forget it.
func (cw *callWatch) stop(call *ServerCall) {
	call.stopWatch(cw.timer)
	cw.mu.Lock()
	cw.call = nil
	cw.mu.Unlock()
}

// fire runs on the timer's goroutine. One that fired for an earlier call
// and ran late finds that call finished, or the current call, which it
// may watch early: nothing is lost, a call is watched once (watch).
func (cw *callWatch) fire() {
	cw.mu.Lock()
	call := cw.call
	cw.mu.Unlock()
	if call != nil {
		call.watch()
	}
}

// serveCall runs one call; false means the connection cannot carry another.
func (s *LeanServer) serveCall(base context.Context, conn *tls.Conn, fr *frameReader, fw *frameWriter, cw *callWatch, payload []byte) bool {
	if payload[16]&FlagActor != 0 && conn.ConnectionState().NegotiatedProtocol != LeanALPN {
		// Only a version 3 caller sends actor calls; this one misreads the
		// protocol it negotiated.
		s.log.Debug("lean connection: actor call on a tandem-invoke/2 connection", "remote", conn.RemoteAddr().String())
		return false
	}
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	if t := int64(binary.BigEndian.Uint64(payload)); t > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, time.Duration(t))
		defer cancelT()
	}
	call := &ServerCall{Head: payload[headPrefixLen:], ContentLength: int64(binary.BigEndian.Uint64(payload[8:])),
		Flags: payload[16], MaxMessageSize: s.max, w: fw, conn: conn, cancel: cancel}
	call.body = bodyReader{fr: fr, owner: call}
	cw.start(call)
	err := s.handler.ServeLean(ctx, call)
	// Before the end goes out: once the caller has it, it may send its
	// next call, which the watch must not take for a departure.
	cw.stop(call)
	if err != nil {
		st := grpcstatus.Convert(err)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			st = grpcstatus.FromContextError(err)
		}
		b, merr := proto.Marshal(st.Proto())
		if merr == nil {
			merr = fw.frame(frameStatus, b)
		}
		if merr != nil {
			call.broken.Store(true)
		}
	} else if ferr := fw.frame(frameEnd, nil); ferr != nil {
		call.broken.Store(true)
	}
	if ferr := fw.flush(); ferr != nil {
		call.broken.Store(true)
	}
	return !call.broken.Load() && call.ended.Load()
}

// ServerCall is one call as the handler sees it: the caller's head, the
// request body (Read) and the answer (SendHead, Write, Flush). The
// transport ends the answer when the handler returns.
type ServerCall struct {
	// Head is the caller's head, valid until the first Read.
	Head []byte
	// ContentLength is the request body's size as the caller announced
	// it, -1 when unknown.
	ContentLength int64
	// Flags are the caller's (FlagStream, FlagActor).
	Flags byte
	// MaxMessageSize is the server's bound on one message, what a handler
	// reading a whole body into memory allows (gRPC's MaxRecvMsgSize).
	MaxMessageSize int

	body   bodyReader
	w      *frameWriter
	conn   *tls.Conn
	cancel context.CancelFunc

	ended  atomic.Bool // the request body was read to its end
	broken atomic.Bool // the connection cannot carry another call

	mu        sync.Mutex
	finished  bool
	watchDone chan struct{}
}

// connFailed ends the call when the connection fails inside its request
// body: the handler's context is cancelled and the connection carries no
// other call.
func (c *ServerCall) connFailed(err error) error {
	c.cancel()
	c.broken.Store(true)
	return fmt.Errorf("receive request body: %w", err)
}

// Read reads the request body.
func (c *ServerCall) Read(p []byte) (int, error) {
	n, err := c.body.Read(p)
	if err == io.EOF {
		c.ended.Store(true)
	}
	return n, err
}

// SendHead buffers the answer's head.
func (c *ServerCall) SendHead(head []byte) error { return c.w.frame(frameHead, head) }

// Write buffers p as body; a full buffer is written out.
func (c *ServerCall) Write(p []byte) (int, error) {
	if err := c.w.data(p); err != nil {
		c.broken.Store(true)
		return 0, err
	}
	return len(p), nil
}

// Flush writes out what is buffered (a streamed answer's chunk).
func (c *ServerCall) Flush() error {
	if err := c.w.flush(); err != nil {
		c.broken.Store(true)
		return err
	}
	return nil
}

// watch runs on the timer's goroutine once a call has taken watchAfter:
// when the request body is complete nothing more may arrive from the
// caller during the call, so a read that returns means it went away
// (it closes the connection to cancel) and the call's context is
// cancelled.
func (c *ServerCall) watch() {
	c.mu.Lock()
	if c.finished || c.watchDone != nil || !c.ended.Load() {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	c.watchDone = done
	c.mu.Unlock()
	defer close(done)
	if _, err := c.body.fr.br.Peek(1); err == nil || !isTimeout(err) {
		c.broken.Store(true)
		c.cancel()
	}
}

// stopWatch ends the watch, if one started, before the connection's next
// read.
func (c *ServerCall) stopWatch(t *time.Timer) {
	c.mu.Lock()
	c.finished = true
	done := c.watchDone
	c.mu.Unlock()
	t.Stop()
	if done != nil {
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = c.conn.SetReadDeadline(time.Time{})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tlsInfo is what gRPC's TLS credentials report for a connection.
func tlsInfo(state tls.ConnectionState) credentials.TLSInfo {
	info := credentials.TLSInfo{State: state, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	if len(state.PeerCertificates) > 0 {
		if id, err := x509svid.IDFromCert(state.PeerCertificates[0]); err == nil {
			info.SPIFFEID = &url.URL{Scheme: "spiffe", Host: id.TrustDomain().Name(), Path: id.Path()}
		}
	}
	return info
}

// alpnCreds are the internal server's TLS credentials with the lean
// transport negotiated: a connection that chose LeanALPN (or LeanALPNv2) is handed to the
// LeanServer (gRPC's credentials.ErrConnDispatched), any other goes on as
// gRPC over h2.
type alpnCreds struct {
	credentials.TransportCredentials
	conf *tls.Config
	lean *LeanServer
}

func (c *alpnCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn := tls.Server(raw, c.conf)
	if err := conn.Handshake(); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	state := conn.ConnectionState()
	if p := state.NegotiatedProtocol; p == LeanALPN || p == LeanALPNv2 {
		_ = raw.SetDeadline(time.Time{})
		if !c.lean.serve(conn) {
			_ = conn.Close()
			return nil, nil, errors.New("lean transport: server is shutting down")
		}
		return nil, nil, credentials.ErrConnDispatched
	}
	return conn, tlsInfo(state), nil
}

func (c *alpnCreds) Clone() credentials.TransportCredentials {
	return &alpnCreds{TransportCredentials: c.TransportCredentials.Clone(), conf: c.conf.Clone(), lean: c.lean}
}
