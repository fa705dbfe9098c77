// Package h1 is a plaintext HTTP/1.1 client for one local server (the app
// next to the sidecar) that writes each request and reads its response on
// the calling goroutine, over a pool of keep-alive connections.
//
// net/http's Transport hands every request to a per-connection writer
// goroutine and every response to a reader goroutine; on a busy sidecar
// those hand-offs are a good share of the CPU an invocation costs. This
// client does the same wire work without them: http.Request.Write puts the
// request on the connection, http.ReadResponse parses the answer, both
// from the standard library. It is meant for requests whose body is small
// and in memory (it writes the whole request before reading, so a server
// that answers early and stops reading a large body would stall it);
// anything else belongs to net/http. A caller that holds a request in
// another form than an http.Request can write it itself (Send with a
// WireRequest) and skip building one.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tandemrun/tandem/internal/rawio"
)

// DefaultMaxHeaderBytes bounds a response's status line and headers when
// Config.MaxHeaderBytes is 0 (net/http's Transport uses the same 10 MiB).
const DefaultMaxHeaderBytes = 10 << 20

// Config configures a Client.
type Config struct {
	// Addr is host:port of the server.
	Addr string
	// MaxIdle is the number of idle connections kept (default 256).
	MaxIdle int
	// IdleTimeout closes connections idle longer than this (default 90 s).
	IdleTimeout time.Duration
	// DialTimeout bounds connecting (default 15 s).
	DialTimeout time.Duration
	// MaxHeaderBytes bounds the response head (default DefaultMaxHeaderBytes).
	MaxHeaderBytes int64
}

// Client sends requests to one server. It is safe for concurrent use.
type Client struct {
	cfg    Config
	dialer net.Dialer

	mu   sync.Mutex
	idle []*conn // most recently used last
}

// New returns a client for cfg.Addr.
func New(cfg Config) *Client {
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = 256
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return &Client{cfg: cfg, dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}}
}

// ErrHeaderTooLarge is returned when the response head exceeds
// Config.MaxHeaderBytes.
var ErrHeaderTooLarge = errors.New("h1: server response headers exceeded the limit")

// conn is one keep-alive connection. Reads go through a counter, so a
// failure can tell whether the server sent anything, and a limit that
// bounds the response head.
type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	read   int64 // bytes read since the current request began
	wrote  int64 // bytes written since the current request began
	limit  int64 // bytes left for the response head; < 0: no limit
	idleAt time.Time
	// abort wakes a blocked read or write of the call in progress (its
	// context ended); made once per connection, not per call.
	abort func()

	// The call's context is watched (context.AfterFunc with abort) only
	// once the call has lasted WatchAfter, or from its deadline if that
	// comes first: a quick call allocates nothing for it. timer is made
	// once per connection; mu guards ctx (the call in progress, nil between
	// calls) and stopWatch (the watch, nil before it starts).
	timer     *time.Timer
	mu        sync.Mutex
	ctx       context.Context
	stopWatch func() bool
}

// WatchAfter is how long a call to the app runs before its context is
// watched: a context cancelled earlier (not by its deadline, which is
// kept to the moment) cuts the call's I/O at most this late.
const WatchAfter = 10 * time.Millisecond

// watch arms the context watch for a call with context ctx.
func (c *conn) watch(ctx context.Context) {
	d := WatchAfter
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, max(time.Until(dl), 0))
	}
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	c.timer.Reset(d)
}

// startWatch watches the context of the call in progress, if any; the
// timer calls it. One that fires late for an earlier call watches the
// current one early, which changes nothing.
func (c *conn) startWatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx != nil && c.stopWatch == nil {
		c.stopWatch = context.AfterFunc(c.ctx, c.abort)
	}
}

// unwatch ends the call's watch. It reports false when the watch cut the
// call's I/O (the connection cannot be reused).
func (c *conn) unwatch() bool {
	c.timer.Stop()
	c.mu.Lock()
	stop := c.stopWatch
	c.ctx, c.stopWatch = nil, nil
	c.mu.Unlock()
	return stop == nil || stop()
}

func (c *conn) Read(p []byte) (int, error) {
	if c.limit == 0 {
		return 0, ErrHeaderTooLarge
	}
	if c.limit > 0 && int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.nc.Read(p)
	c.read += int64(n)
	if c.limit > 0 {
		c.limit -= int64(n)
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.wrote += int64(n)
	return n, err
}

// RoundTrip sends req and returns the response; the caller must close
// resp.Body, which hands the connection back for reuse once the body has
// been read to the end. Client is an http.RoundTripper.
//
// An idle connection the server has closed is noticed before it is used
// (a non-blocking peek). A request that still fails on a reused connection
// (the server closed it just then) is sent once more on a new connection,
// with the rules of net/http's Transport: when not a byte of it went out,
// or when the server answered nothing and the request is idempotent (GET,
// HEAD, OPTIONS, TRACE). A request with a body needs req.GetBody to be
// sent again.
func (cl *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return cl.send(req.Context(), req, nil)
}

// WireRequest is a request that writes itself: Send puts it on the
// connection as it is. It is for a caller that holds a request in another
// form than an http.Request (the sidecar's invocation metadata) and would
// otherwise build one only to have it written.
type WireRequest interface {
	// Method is the request's method, as written.
	Method() string
	// WriteRequest writes the whole request to bw: request line, headers
	// (Host among them), the blank line and the body, which must be
	// Content-Length bytes. Send calls it once more, on a new connection,
	// when it sends the request again, so it must be able to write the
	// same request twice.
	WriteRequest(bw *bufio.Writer) error
}

// Send sends req and returns the response, with RoundTrip's rules for
// reused connections and for sending again (the body of a WireRequest can
// always be written again). The response's Request is nil.
func (cl *Client) Send(ctx context.Context, req WireRequest) (*http.Response, error) {
	return cl.send(ctx, nil, req)
}

// send sends std or wire, whichever is not nil.
func (cl *Client) send(ctx context.Context, std *http.Request, wire WireRequest) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // the watch would only see it later
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := cl.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := cl.roundTrip(ctx, c, std, wire)
		if err == nil {
			return resp, nil
		}
		method := ""
		replayable := true
		if std != nil {
			method = std.Method
			hasBody := std.Body != nil && std.Body != http.NoBody
			replayable = !hasBody || std.GetBody != nil
		} else {
			method = wire.Method()
		}
		retry := reused && attempt == 0 && ctx.Err() == nil && c.read == 0 &&
			(c.wrote == 0 || idempotent(method)) && replayable
		if !retry {
			return nil, err
		}
		if std != nil && std.Body != nil && std.Body != http.NoBody {
			body, err := std.GetBody()
			if err != nil {
				return nil, err
			}
			r2 := *std
			r2.Body = body
			std = &r2
		}
	}
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// aLongTimeAgo is a deadline in the past: it wakes a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip writes std or wire on c and reads the response.
func (cl *Client) roundTrip(ctx context.Context, c *conn, std *http.Request, wire WireRequest) (*http.Response, error) {
	c.watch(ctx)
	fail := func(err error) (*http.Response, error) {
		c.unwatch()
		_ = c.nc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	c.read, c.wrote = 0, 0
	var err error
	method := ""
	if std != nil {
		method = std.Method
		err = writeRequest(c.bw, std)
	} else {
		method = wire.Method()
		err = wire.WriteRequest(c.bw)
	}
	if err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	if err := c.bw.Flush(); err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	for {
		c.limit = cl.cfg.MaxHeaderBytes
		resp, spare, err := readResponse(c.br, std, method, cl.cfg.MaxHeaderBytes)
		c.limit = -1
		if err != nil {
			if c.read == 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fail(fmt.Errorf("read response: %w", err))
		}
		// 1xx answers other than 101 are informational: the real one follows.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		resp.Request = std
		if spare == nil {
			spare = &body{}
		}
		*spare = body{rc: resp.Body, c: c, cl: cl, keep: !resp.Close && (std == nil || !std.Close),
			eof: resp.Body == http.NoBody, size: resp.ContentLength}
		resp.Body = spare
		return resp, nil
	}
}

// body hands the connection back once the response body has been read to
// its end, and closes it when the caller gives up earlier.
type body struct {
	rc   io.ReadCloser
	c    *conn
	cl   *Client
	keep bool
	eof  bool
	done bool
	size int64 // Content-Length, -1 when chunked or until close
	n    int64 // bytes read
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("h1: read on closed response body")
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// A reader that took exactly Content-Length bytes (io.ReadFull) has not
	// seen EOF, but the body is over: the next read returns it without I/O.
	if !b.eof && b.size >= 0 && b.n == b.size {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n == 0 && err == io.EOF {
			b.eof = true
		}
	}
	// unwatch reports false when the context's end already hit the conn.
	if b.c.unwatch() && b.keep && b.eof {
		b.cl.put(b.c)
		return nil
	}
	return b.c.nc.Close()
}

// get returns an idle connection (reused true) or dials a new one.
func (cl *Client) get(ctx context.Context) (*conn, bool, error) {
	now := time.Now()
	cl.mu.Lock()
	for n := len(cl.idle); n > 0; n = len(cl.idle) {
		c := cl.idle[n-1]
		cl.idle[n-1] = nil
		cl.idle = cl.idle[:n-1]
		if now.Sub(c.idleAt) >= cl.cfg.IdleTimeout {
			_ = c.nc.Close()
			continue
		}
		cl.mu.Unlock()
		if c.br.Buffered() == 0 && rawio.IdleOpen(c.nc) {
			return c, true, nil
		}
		_ = c.nc.Close() // closed by the server, or it sent bytes nobody asked for
		cl.mu.Lock()
	}
	cl.mu.Unlock()
	nc, err := cl.dialer.DialContext(ctx, "tcp", cl.cfg.Addr)
	if err != nil {
		return nil, false, err
	}
	c := &conn{nc: rawio.Wrap(nc), limit: -1}
	c.abort = func() { _ = c.nc.SetDeadline(aLongTimeAgo) }
	c.timer = time.AfterFunc(time.Hour, c.startWatch)
	c.timer.Stop()
	c.br = bufio.NewReaderSize(c, 4096)
	c.bw = bufio.NewWriterSize(c, 4096)
	return c, false, nil
}

// put keeps c for reuse, closing connections that idled too long.
func (cl *Client) put(c *conn) {
	c.idleAt = time.Now()
	cl.mu.Lock()
	if len(cl.idle) >= cl.cfg.MaxIdle {
		cl.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	// The oldest idle connections are first; drop the expired ones.
	expired := 0
	for expired < len(cl.idle) && c.idleAt.Sub(cl.idle[expired].idleAt) >= cl.cfg.IdleTimeout {
		_ = cl.idle[expired].nc.Close()
		expired++
	}
	if expired > 0 {
		n := copy(cl.idle, cl.idle[expired:])
		clear(cl.idle[n:])
		cl.idle = cl.idle[:n]
	}
	cl.idle = append(cl.idle, c)
	cl.mu.Unlock()
}

// CloseIdleConnections closes the connections not in use.
func (cl *Client) CloseIdleConnections() {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle = nil
	cl.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}
