package h1server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

// aLongTimeAgo is a deadline that has passed, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// serve serves the connection's requests one after the other.
func (c *conn) serve() {
	defer func() {
		if c.state.Load() != stateHijacked {
			c.srv.forget(c)
		}
	}()
	if ra := c.rwc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, c.rwc.LocalAddr())
	c.ctx, c.cancel = context.WithCancel(ctx)
	defer c.cancel()
	if tc, ok := c.rwc.(*tls.Conn); ok {
		if d := c.srv.ReadHeaderTimeout; d > 0 {
			_ = tc.SetDeadline(time.Now().Add(d))
		}
		if err := tc.HandshakeContext(c.ctx); err != nil {
			_ = c.rwc.Close()
			return
		}
		_ = tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.cr.c = c
	c.cr.cond.L = &c.cr.mu
	c.cr.remain = -1
	c.cw.c = c
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(&c.cr)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(&c.cw)
	c.watch = time.AfterFunc(time.Hour, c.startWatch)
	c.watch.Stop()
	var lastMethod string
	for c.next(&lastMethod) {
	}
	c.watch.Stop()
	if c.state.Load() == stateHijacked {
		return
	}
	_ = c.bw.Flush()
	_ = c.rwc.Close()
	c.br.Reset(nil)
	readers.Put(c.br)
	c.bw.Reset(nil)
	writers.Put(c.bw)
}

// next serves one request and reports whether the connection takes
// another.
func (c *conn) next(lastMethod *string) bool {
	// The header size limit counts from the first byte of a connection's
	// first request, and from after the wait for a later one, as net/http.
	first := c.state.Load() == stateNew
	if first {
		c.cr.setLimit(c.srv.headerLimit())
		// A new connection has ReadHeaderTimeout to send its first
		// header, as with net/http; a kept one may wait for its next
		// request without a bound.
		if d := c.srv.ReadHeaderTimeout; d > 0 {
			_ = c.rwc.SetReadDeadline(time.Now().Add(d))
		}
	} else {
		c.state.Store(stateIdle)
	}
	// A later request must have 4 bytes to be read at all, as in
	// net/http (which ends the connection quietly otherwise).
	peek := 1
	if !first {
		peek = 4
	}
	if _, err := c.br.Peek(peek); err != nil {
		return false
	}
	c.state.Store(stateActive)
	if c.srv.shutting.Load() {
		return false
	}
	if *lastMethod == http.MethodPost {
		// Some clients send a CRLF after a POST body.
		peek, _ := c.br.Peek(4)
		n := 0
		for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
			n++
		}
		_, _ = c.br.Discard(n)
	}
	// A header received whole is parsed by parseFast when it can.
	header, whole := bufferedHeader(c.br)
	// A first request's header deadline runs since the connection came;
	// a later one's starts now. A header received whole needs none.
	d := c.srv.ReadHeaderTimeout
	deadline := d > 0 && !whole
	switch {
	case deadline && !first:
		_ = c.rwc.SetReadDeadline(time.Now().Add(d))
	case d > 0 && whole && first:
		_ = c.rwc.SetReadDeadline(time.Time{})
	}
	if !first {
		c.cr.setLimit(c.srv.headerLimit())
	}
	var req *http.Request
	var err error
	fast := false
	if whole {
		req, fast = parseFast(c.br, header)
	}
	if !fast {
		// http.ReadRequest drops the Host fields it read; net/http's
		// server checks them first: a header received whole is looked
		// at here.
		hosts := hostFields{count: -1}
		if whole {
			hosts = scanHosts(header)
		}
		if req, err = http.ReadRequest(c.br); err == nil {
			err = check(req, hosts)
		}
	}
	hitLimit := c.cr.hitLimit()
	c.cr.setLimit(-1)
	if deadline {
		_ = c.rwc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		c.refuse(err, hitLimit)
		return false
	}
	*lastMethod = req.Method
	return c.handle(req)
}

// bufferedHeader returns the buffered bytes up to the end of the first
// request header, and whether that end is buffered.
func bufferedHeader(br *bufio.Reader) ([]byte, bool) {
	b, _ := br.Peek(br.Buffered())
	if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
		if j := bytes.Index(b[:i+1], []byte("\n\n")); j >= 0 {
			return b[:j+2], true
		}
		return b[:i+3], true
	}
	if j := bytes.Index(b, []byte("\n\n")); j >= 0 {
		return b[:j+2], true
	}
	return nil, false
}

// hostFields is what a request header holds in Host fields; count -1:
// not known (the header was not received whole before parsing).
type hostFields struct {
	count int
	first string
}

// scanHosts counts the Host fields of a raw request header.
func scanHosts(header []byte) hostFields {
	h := hostFields{}
	_, rest, _ := bytes.Cut(header, []byte("\n")) // the request line
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(line) < 5 || !bytes.EqualFold(line[:5], []byte("host:")) {
			continue
		}
		h.count++
		if h.count > 1 {
			continue
		}
		// Continuation lines join the value with a space, as textproto.
		v := textproto.TrimString(string(line[5:]))
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			var more []byte
			more, rest, _ = bytes.Cut(rest, []byte("\n"))
			v += " " + textproto.TrimString(string(more))
		}
		h.first = strings.TrimLeft(v, " \t")
	}
	return h
}

// badRequest is a request net/http's server refuses with 400 and a reason.
type badRequest string

func (e badRequest) Error() string { return "bad request: " + string(e) }

// errVersion is a protocol version net/http's server does not serve.
var errVersion = errors.New("unsupported protocol version")

// check applies the checks net/http's server makes after parsing.
func check(req *http.Request, hosts hostFields) error {
	if req.ProtoMajor != 1 && (req.ProtoMajor != 2 || req.ProtoMinor != 0 || req.Method != "PRI" || req.RequestURI != "*") {
		return errVersion
	}
	if hosts.count < 0 {
		// Not seen: what ReadRequest kept of them.
		hosts = hostFields{first: req.Host}
		if req.Host != "" {
			hosts.count = 1
		}
	}
	if req.ProtoAtLeast(1, 1) && hosts.count == 0 && !isH2Upgrade(req) && req.Method != http.MethodConnect {
		return badRequest("missing required Host header")
	}
	if hosts.count > 1 {
		return badRequest("too many Host headers")
	}
	if hosts.count == 1 && !httpguts.ValidHostHeader(hosts.first) {
		return badRequest("malformed Host header")
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return badRequest("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return badRequest("invalid header value")
			}
		}
	}
	delete(req.Header, "Host")
	return nil
}

// isH2Upgrade reports whether req is HTTP/2's connection preface.
func isH2Upgrade(req *http.Request) bool {
	return req.Method == "PRI" && len(req.Header) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
}

// refuse answers a request that could not be read as net/http's server
// does, and the connection ends.
func (c *conn) refuse(err error, hitLimit bool) {
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	var bad badRequest
	switch {
	case hitLimit:
		const publicErr = "431 Request Header Fields Too Large"
		_, _ = io.WriteString(c.rwc, "HTTP/1.1 "+publicErr+errorHeaders+publicErr)
		c.closeWriteAndWait()
	case strings.Contains(err.Error(), "unsupported transfer encoding"):
		_, _ = io.WriteString(c.rwc, "HTTP/1.1 501 Not Implemented"+errorHeaders+"Unsupported transfer encoding")
	case isCommonNetReadError(err):
	case errors.Is(err, errVersion):
		_, _ = io.WriteString(c.rwc, "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version"+errorHeaders+"505 HTTP Version Not Supported: unsupported protocol version")
	case errors.As(err, &bad):
		_, _ = fmt.Fprintf(c.rwc, "HTTP/1.1 400 Bad Request: %s%s400 Bad Request: %s", string(bad), errorHeaders, string(bad))
	default:
		_, _ = io.WriteString(c.rwc, "HTTP/1.1 400 Bad Request"+errorHeaders+"400 Bad Request")
	}
}

func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "read" {
		return true
	}
	return false
}

// closeWriteAndWait half-closes the connection and waits a little, so
// the client reads the answer before its unread data resets it.
func (c *conn) closeWriteAndWait() {
	_ = c.bw.Flush()
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}

// handle runs the handler for req and finishes its answer.
func (c *conn) handle(req *http.Request) bool {
	ctx, cancel := context.WithCancel(c.ctx)
	x := &exchange{}
	w := &x.resp
	w.c = c
	w.req = req
	w.status = http.StatusOK
	w.contentLength = -1
	w.handlerHeader = make(http.Header)
	w.wants10KeepAlive = req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(req.Header.Get("Connection"), "keep-alive")
	w.wantsClose = req.Close
	if isH2Upgrade(req) {
		w.closeAfterReply = true
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	x.body.rc = req.Body
	x.body.w = w
	x.body.done = req.Body == http.NoBody
	w.body = &x.body
	req.Body = &x.body
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	// The request keeps its address: its body fills its Trailer field.
	*req = *req.WithContext(ctx)
	if hasToken(req.Header.Get("Expect"), "100-continue") {
		if req.ProtoAtLeast(1, 1) && req.ContentLength != 0 {
			x.body.canContinue = true
			x.body.expectContinue = true
		}
	} else if req.Header.Get("Expect") != "" {
		cancel()
		w.handlerHeader.Set("Connection", "close")
		w.WriteHeader(http.StatusExpectationFailed)
		w.finish()
		return false
	}

	var handler http.Handler
	if req.RequestURI == "*" && req.Method == http.MethodOptions {
		handler = globalOptions{} // as net/http's server
	} else {
		handler = c.srv.handler()
	}
	if !c.run(handler, w, req, cancel) || c.state.Load() == stateHijacked {
		return false
	}
	w.finish()
	if !w.reuse() {
		if w.bodyLimitHit || w.body.closedEarly() {
			c.closeWriteAndWait()
		}
		return false
	}
	return true
}

// run calls the handler with the disconnect watch armed, and ends the
// request's context after it. It reports false when the handler panicked:
// the answer is cut short and the connection ends.
func (c *conn) run(h http.Handler, w *response, req *http.Request, cancel context.CancelFunc) (ok bool) {
	c.mu.Lock()
	c.running = w
	c.mu.Unlock()
	c.watch.Reset(WatchAfter)
	defer func() {
		c.watch.Stop()
		c.mu.Lock()
		c.running = nil
		c.mu.Unlock()
		cancel()
		if ok {
			return
		}
		if v := recover(); v != http.ErrAbortHandler {
			c.srv.logPanic(c.remote, v)
		}
		if c.state.Load() != stateHijacked {
			c.cr.abortPendingRead()
			w.bodyMu.Lock()
			w.handlerDone = true
			w.bodyMu.Unlock()
		}
	}()
	h.ServeHTTP(w, req)
	return true
}

// startWatch runs WatchAfter into a handler: once the request's body has
// been read whole, a read on the connection tells when the client goes
// away (and cancels the request's context), as net/http's server does for
// every request.
func (c *conn) startWatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.running
	if w == nil || c.state.Load() == stateHijacked || !w.body.finished() {
		return
	}
	c.cr.startBackgroundRead(c.br)
}

// connReader reads the connection for the bufio.Reader: it enforces the
// header size limit, hands over the byte a background read got, and
// cancels the connection's context on read errors.
type connReader struct {
	c       *conn
	mu      sync.Mutex
	cond    sync.Cond
	remain  int64 // -1: no limit
	hit     bool
	inRead  bool
	aborted bool
	hasByte bool
	byteBuf [1]byte
}

func (cr *connReader) setLimit(n int64) {
	cr.mu.Lock()
	cr.remain, cr.hit = n, false
	cr.mu.Unlock()
}

func (cr *connReader) hitLimit() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.hit
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	if cr.inRead {
		cr.mu.Unlock()
		if cr.c.state.Load() == stateHijacked {
			panic("invalid Body.Read call. After hijacked, the original Request must not be used")
		}
		panic("invalid concurrent Body.Read call")
	}
	if cr.remain == 0 {
		cr.hit = true
		cr.mu.Unlock()
		return 0, io.EOF
	}
	if len(p) == 0 {
		cr.mu.Unlock()
		return 0, nil
	}
	if cr.remain > 0 && int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		if cr.remain > 0 {
			cr.remain--
		}
		cr.mu.Unlock()
		return 1, nil
	}
	cr.inRead = true
	cr.mu.Unlock()
	n, err := cr.c.rwc.Read(p)
	cr.mu.Lock()
	cr.inRead = false
	if err != nil {
		cr.c.cancel()
	}
	if cr.remain > 0 {
		cr.remain -= int64(min(int64(n), cr.remain))
	}
	cr.mu.Unlock()
	cr.cond.Broadcast()
	return n, err
}

// startBackgroundRead starts a one-byte read that cancels the connection's
// context if the client goes away. Nothing starts while bytes of a next
// request are buffered: the client is not gone.
func (cr *connReader) startBackgroundRead(br *bufio.Reader) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.inRead || cr.hasByte || br.Buffered() > 0 {
		return
	}
	cr.inRead = true
	go cr.backgroundRead()
}

func (cr *connReader) backgroundRead() {
	n, err := cr.c.rwc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true // a pipelined request
	}
	if ne, ok := err.(net.Error); ok && cr.aborted && ne.Timeout() {
		// abortPendingRead woke it.
	} else if err != nil {
		cr.c.cancel()
	}
	cr.aborted = false
	cr.inRead = false
	cr.mu.Unlock()
	cr.cond.Broadcast()
}

// abortPendingRead stops a background read and waits for it to end.
func (cr *connReader) abortPendingRead() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if !cr.inRead {
		return
	}
	cr.aborted = true
	_ = cr.c.rwc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	_ = cr.c.rwc.SetReadDeadline(time.Time{})
}

// connWriter writes to the connection and cancels its context on errors,
// as net/http's server does.
type connWriter struct {
	c   *conn
	err error
}

func (cw *connWriter) Write(p []byte) (int, error) {
	n, err := cw.c.rwc.Write(p)
	if err != nil && cw.err == nil {
		cw.err = err
		cw.c.cancel()
	}
	return n, err
}

// hasToken reports whether token appears in v between token boundaries
// (space, comma, tab), case-insensitively: net/http's rule for Connection
// and Expect.
func hasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	boundary := func(b byte) bool { return b == ' ' || b == ',' || b == '\t' }
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !boundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !boundary(v[end]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

// globalOptions answers "OPTIONS *" as net/http's server does.
type globalOptions struct{}

func (globalOptions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		mb := http.MaxBytesReader(w, r.Body, 4<<10)
		_, _ = io.Copy(io.Discard, mb)
	}
}
