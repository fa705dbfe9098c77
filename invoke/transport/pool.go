package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"

	"github.com/tandemrun/tandem/internal/rawio"
)

// DefaultMaxMessageSize is the largest gRPC message sent or received on the
// internal port when Options.MaxMessageSize is zero. gRPC's own default of
// 4 MiB would refuse unary invocations with bodies near Dapr's default
// 4 MiB max request size once framing is added.
const DefaultMaxMessageSize = 16 << 20

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("transport: connection pool is closed")

// Options configure a Pool.
type Options struct {
	// Source is this sidecar's identity. Nil means plaintext (mTLS disabled,
	// daprd's --enable-mtls=false).
	Source *identity.Source
	// Authorizer decides which server SPIFFE IDs are accepted. Nil accepts
	// any ID in the trust domain of this sidecar's own current SVID.
	Authorizer tlsconfig.Authorizer
	// MaxMessageSize bounds one gRPC message each way
	// (DefaultMaxMessageSize if zero).
	MaxMessageSize int
	// DialOptions are appended to the pool's own (tests, tracing).
	DialOptions []grpc.DialOption
	// Lean makes calls to peers that offer the lean transport over it
	// (with Source only). Off, every call uses Dapr's gRPC.
	Lean bool
	Log  *slog.Logger
}

// Pool holds one client connection per remote host:port. It is safe for
// concurrent use.
type Pool struct {
	opts    []grpc.DialOption
	maxSize int
	log     *slog.Logger

	// leanTLS is nil when the lean transport is off (plaintext, NoLean).
	leanTLS *tls.Config
	dialer  *net.Dialer

	mu     sync.Mutex
	conns  map[string]*pooledConn
	lean   map[string]*leanPeer
	closed bool
}

// pooledConn is one pooled connection and the calls running on it. A
// connection the pool no longer hands out (Discard) is closed only once its
// last call has finished: closing a gRPC connection cancels every call on
// it, and a caller that got it from Get just before the Discard would fail
// with "grpc: the client connection is closing" (Canceled, so not retried)
// although its request was never sent.
type pooledConn struct {
	cc *grpc.ClientConn
	// state counts the calls in flight; retiredBit says the pool dropped
	// the connection, closedBit that it is (being) closed and admits no
	// more calls.
	state atomic.Int64
	log   *slog.Logger
	addr  string
}

const (
	closedBit  = int64(1) << 62
	retiredBit = int64(1) << 61
	countMask  = retiredBit - 1
)

// errRetired is what a call gets when it picked a connection that was
// closed before the call started. Nothing was sent, so it is Unavailable:
// every caller retries that on a fresh connection.
var errRetired = status.Error(codes.Unavailable, "transport: pooled connection to sidecar was retired before the call started; retry on a fresh one")

// acquire admits one call unless the connection is closed.
func (c *pooledConn) acquire() bool {
	for {
		s := c.state.Load()
		if s&closedBit != 0 {
			return false
		}
		if c.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// release ends one call; the last call on a retired connection closes it.
func (c *pooledConn) release() {
	s := c.state.Add(-1)
	if s&retiredBit != 0 && s&countMask == 0 {
		c.closeIfIdle()
	}
}

// retire stops handing the connection out and closes it when idle.
func (c *pooledConn) retire() {
	c.state.Or(retiredBit)
	c.closeIfIdle()
}

// closeIfIdle closes a retired connection with no calls, exactly once.
func (c *pooledConn) closeIfIdle() {
	for {
		s := c.state.Load()
		if s&closedBit != 0 || s&countMask != 0 {
			return
		}
		if c.state.CompareAndSwap(s, s|closedBit) {
			_ = c.cc.Close()
			c.log.Debug("closed retired connection to sidecar", "address", c.addr)
			return
		}
	}
}

// unary and stream are the connection's interceptors: they count calls so
// that retire never cuts one off.
func (c *pooledConn) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if !c.acquire() {
		return errRetired
	}
	defer c.release()
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *pooledConn) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if !c.acquire() {
		return nil, errRetired
	}
	var once sync.Once
	done := func(error) { once.Do(c.release) }
	cs, err := streamer(ctx, desc, cc, method, append(opts, grpc.OnFinish(done))...)
	if err != nil {
		done(err)
	}
	return cs, err
}

// NewPool returns an empty pool; connections are made on first use.
func NewPool(o Options) *Pool {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	var creds credentials.TransportCredentials
	var leanTLS *tls.Config
	if o.Source == nil {
		creds = insecure.NewCredentials()
	} else {
		auth := o.Authorizer
		if auth == nil {
			auth = sameTrustDomainAsSelf(o.Source)
		}
		conf := identity.ClientTLS(o.Source, auth)
		creds = credentials.NewTLS(conf)
		if o.Lean {
			leanTLS = conf.Clone()
			leanTLS.NextProtos = slices.Clone(leanProtos)
		}
	}
	opts := []grpc.DialOption{
		grpc.WithContextDialer(rawio.Dial),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(o.MaxMessageSize),
			grpc.MaxCallSendMsgSize(o.MaxMessageSize),
		),
		// Pings only while calls are open and no more often than gRPC
		// servers (daprd included) tolerate by default (5 minutes), so a
		// long quiet stream is not answered with GOAWAY "too_many_pings".
		// Dead idle peers are found by TCP keepalive and by the
		// server-side pings ServerOptions enables.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    5 * time.Minute,
			Timeout: 20 * time.Second,
		}),
		// Large windows keep multi-megabyte bodies from stalling on flow
		// control between sidecars.
		grpc.WithInitialWindowSize(1 << 20),
		grpc.WithInitialConnWindowSize(4 << 20),
	}
	opts = append(opts, o.DialOptions...)
	return &Pool{
		opts:    opts,
		maxSize: o.MaxMessageSize,
		log:     o.Log,
		conns:   make(map[string]*pooledConn),
		lean:    make(map[string]*leanPeer),
		leanTLS: leanTLS,
		dialer:  newDialer(),
	}
}

// MaxMessageSize is the message size limit the pool's connections use.
func (p *Pool) MaxMessageSize() int { return p.maxSize }

// Get returns the connection to addr (host:port), creating it if needed. A
// connection that was shut down is replaced. Connecting is lazy: errors
// reaching addr surface on the first call as codes.Unavailable.
func (p *Pool) Get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if pc, ok := p.conns[addr]; ok {
		switch pc.cc.GetState() {
		case connectivity.Shutdown:
			delete(p.conns, addr)
			pc.retire()
		case connectivity.TransientFailure:
			// The peer may be back; don't wait out gRPC's backoff.
			pc.cc.ResetConnectBackoff()
			return pc.cc, nil
		default:
			return pc.cc, nil
		}
	}
	pc := &pooledConn{log: p.log, addr: addr}
	opts := append(p.opts[:len(p.opts):len(p.opts)],
		grpc.WithChainUnaryInterceptor(pc.unary), grpc.WithChainStreamInterceptor(pc.stream))
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to sidecar at %s: %w", addr, err)
	}
	pc.cc = cc
	p.conns[addr] = pc
	p.log.Debug("opened connection to sidecar", "address", addr)
	return cc, nil
}

// Discard forgets cc if it is still the pool's connection to addr, so the
// next Get dials afresh, and closes it once the calls running on it have
// finished. Callers use it after a transport failure (codes.Unavailable).
// A call started on cc after that fails with codes.Unavailable without
// being sent, so callers' usual retry on a fresh connection covers it.
func (p *Pool) Discard(addr string, cc *grpc.ClientConn) {
	p.mu.Lock()
	cur, ok := p.conns[addr]
	if ok && cur.cc == cc {
		delete(p.conns, addr)
	}
	p.mu.Unlock()
	if ok && cur.cc == cc {
		cur.retire()
		p.log.Debug("discarded broken connection to sidecar", "address", addr)
	}
}

// Len is the number of peers the pool holds connections to (one gRPC
// connection each, and any idle lean connections).
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for addr, lp := range p.lean {
		if _, ok := p.conns[addr]; ok {
			continue
		}
		lp.mu.Lock()
		if len(lp.idle) > 0 {
			n++
		}
		lp.mu.Unlock()
	}
	return n
}

// Close closes every connection; later Gets fail with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.closed = true
	p.closeLean()
	p.mu.Unlock()
	var errs []error
	for addr, pc := range conns {
		if err := pc.cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// sameTrustDomainAsSelf accepts peers in the trust domain of src's SVID at
// handshake time, so it follows a rotated identity.
func sameTrustDomainAsSelf(src *identity.Source) tlsconfig.Authorizer {
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		own, err := src.GetX509SVID()
		if err != nil {
			return err
		}
		if !id.MemberOf(own.ID.TrustDomain()) {
			return fmt.Errorf("peer %s is not in trust domain %q", id, own.ID.TrustDomain().Name())
		}
		return nil
	}
}
