package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeChunking is how much of an answer's body is held to give it
// a Content-Length (net/http's figure).
const bufferBeforeChunking = 2048

// exchange is one request's answer and body, in one allocation.
type exchange struct {
	resp response
	body reqBody
}

// response is the http.ResponseWriter of one request.
type response struct {
	c    *conn
	req  *http.Request
	body *reqBody

	handlerHeader http.Header
	status        int
	wroteHeader   bool // WriteHeader called (or implied)
	committed     bool // status line and header written
	chunking      bool
	contentLength int64 // declared; -1: none
	written       int64
	trailers      []string
	fullDuplex    bool

	wants10KeepAlive bool
	wantsClose       bool
	closeAfterReply  bool
	bodyLimitHit     bool

	// bodyMu orders the answer's writes with the automatic 100 Continue.
	bodyMu      sync.Mutex
	handlerDone bool
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.handlerHeader }

// WriteHeader implements http.ResponseWriter.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return // superfluous, as net/http (which logs it)
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.bodyMu.Lock()
		if code == http.StatusContinue {
			w.body.canContinue = false
		}
		writeStatusLine(w.c.bw, w.req.ProtoAtLeast(1, 1), code)
		w.writeSubset(w.c.bw, w.handlerHeader, true)
		_, _ = w.c.bw.WriteString("\r\n")
		_ = w.c.bw.Flush()
		w.bodyMu.Unlock()
		return
	}
	w.wroteHeader = true
	w.status = code
	// The header as it is now is the one sent.
	snap := w.c.snap
	if snap == nil {
		snap = make(http.Header, len(w.handlerHeader))
		w.c.snap = snap
	}
	clear(snap)
	for k, v := range w.handlerHeader {
		snap[k] = v
	}
	if cl := snap.Get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			// Dropped from the handler's header, not from the one sent,
			// as net/http (the answer is then chunked).
			delete(w.handlerHeader, "Content-Length")
		}
	}
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if len(w.c.pending)+len(p) <= bufferBeforeChunking {
			w.c.pending = append(w.c.pending, p...)
			return len(p), nil
		}
		if err := w.commit(false, p); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

// WriteString lets io.WriteString skip a conversion.
func (w *response) WriteString(s string) (int, error) {
	if !w.committed && w.wroteHeader && len(w.c.pending)+len(s) <= bufferBeforeChunking && bodyAllowedForStatus(w.status) &&
		(w.contentLength == -1 || w.written+int64(len(s)) <= w.contentLength) {
		w.written += int64(len(s))
		w.c.pending = append(w.c.pending, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes body bytes once the header is out.
func (w *response) writeBody(p []byte) (int, error) {
	w.bodyMu.Lock()
	defer w.bodyMu.Unlock()
	return w.writeBodyLocked(p)
}

// writeBodyLocked writes body bytes, with w.bodyMu held.
func (w *response) writeBodyLocked(p []byte) (int, error) {
	if w.req.Method == http.MethodHead {
		return len(p), nil // eaten, as net/http
	}
	bw := w.c.bw
	if w.chunking {
		_, _ = fmt.Fprintf(bw, "%x\r\n", len(p))
	}
	n, err := bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// Flush implements http.Flusher: the header goes out if it has not, and
// what is buffered with it.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error (http.ResponseController).
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		if err := w.commit(false, nil); err != nil {
			return err
		}
	}
	w.bodyMu.Lock()
	defer w.bodyMu.Unlock()
	return w.c.bw.Flush()
}

// Hijack implements http.Hijacker.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if w.handlerDone {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		return nil, nil, fmt.Errorf("h1server: Hijack after the answer's header was written")
	}
	if c.state.Load() == stateHijacked {
		return nil, nil, http.ErrHijacked
	}
	// Under c.mu, so that the watch cannot start a read on a connection
	// now the handler's; one already started is stopped below.
	c.mu.Lock()
	c.watch.Stop()
	c.state.Store(stateHijacked)
	c.mu.Unlock()
	c.cr.abortPendingRead()
	c.srv.forget(c)
	_ = c.bw.Flush()
	rw := bufio.NewReadWriter(c.br, bufio.NewWriter(c.rwc))
	if c.cr.hasByte {
		// A byte the background read took: put it back in front.
		all, _ := c.br.Peek(c.br.Buffered())
		rw.Reader = bufio.NewReader(io.MultiReader(strings.NewReader(string(c.cr.byteBuf[:])+string(all)), c.rwc))
		c.cr.hasByte = false
	} else {
		rw.Reader = c.br
	}
	c.br = nil
	return c.rwc, rw, nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex serves http.ResponseController: the request body stays
// readable after the answer has started.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// finish completes the answer after the handler returned.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.bodyMu.Lock()
	w.handlerDone = true
	w.body.canContinue = false
	w.bodyMu.Unlock()
	if !w.committed {
		_ = w.commit(true, nil)
		if p := w.c.pending; len(p) > 0 && bodyAllowedForStatus(w.status) {
			_, _ = w.writeBody(p)
		}
		w.c.pending = w.c.pending[:0]
	}
	if w.chunking {
		bw := w.c.bw
		_, _ = bw.WriteString("0\r\n")
		if t := w.finalTrailers(); len(t) > 0 {
			w.writeSubset(bw, t, false)
		}
		_, _ = bw.WriteString("\r\n")
	}
	_ = w.c.bw.Flush()
	w.c.cr.abortPendingRead()
	_ = w.body.Close()
}

// reuse reports whether the connection takes another request.
func (w *response) reuse() bool {
	if w.closeAfterReply {
		return false
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.written != w.contentLength {
		return false // the client cannot tell where the answer ended
	}
	if w.c.cw.err != nil {
		return false
	}
	return !w.body.closedEarly()
}

// commit writes the status line and header. final: the handler returned
// and c.pending is the whole body; else next is the write that did not fit
// (the content type is sniffed from the body's start, as net/http).
func (w *response) commit(final bool, next []byte) error {
	w.committed = true
	c := w.c
	p := c.pending
	header := c.snap
	isHEAD := w.req.Method == http.MethodHead
	var ct, conn, te, clen string

	// Trailers declared by the "Trailer" header or by http.TrailerPrefix.
	trailers := false
	for k := range header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			trailers = true
		}
	}
	w.trailers = w.trailers[:0]
	for _, v := range header["Trailer"] {
		trailers = true
		for _, k := range strings.Split(v, ",") {
			k = textproto.TrimString(k)
			if k == "" {
				continue
			}
			k = http.CanonicalHeaderKey(k)
			if httpguts.ValidTrailerHeader(k) {
				w.trailers = append(w.trailers, k)
			}
		}
	}
	teh := header.Get("Transfer-Encoding")
	hasTE := teh != ""
	if final && !trailers && !hasTE && bodyAllowedForStatus(w.status) && len(header["Content-Length"]) == 0 && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		clen = strconv.Itoa(len(p))
	}
	keepAlives := !c.srv.shutting.Load()
	if w.wants10KeepAlive && keepAlives {
		if header.Get("Content-Length") != "" && header.Get("Connection") == "keep-alive" {
			w.closeAfterReply = false
		}
	}
	hasCL := w.contentLength != -1
	if w.wants10KeepAlive && (isHEAD || hasCL || !bodyAllowedForStatus(w.status)) {
		if _, set := header["Connection"]; !set {
			conn = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfterReply = true
	}
	if header.Get("Connection") == "close" || !keepAlives {
		w.closeAfterReply = true
	}
	if w.body.expectContinue && !w.body.readToEOF() {
		// The client was told to wait and never asked for the body.
		w.closeAfterReply = true
	}
	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex {
		// Read what is left of the body before answering: some clients
		// send it all before they read, and would deadlock.
		w.drainBody()
	}
	code := w.status
	del := func(k string) { delete(header, k) }
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		if header.Get("Content-Encoding") == "" && !haveType && !hasTE && len(p)+len(next) > 0 {
			ct = http.DetectContentType(sniffed(p, next))
		}
	} else {
		switch code {
		case http.StatusNotModified:
			del("Content-Type")
			del("Content-Length")
			del("Transfer-Encoding")
		default:
			del("Content-Length")
			del("Transfer-Encoding")
		}
	}
	date := ""
	if _, ok := header["Date"]; !ok {
		date = httpDate()
	}
	if hasCL && hasTE && teh != "identity" {
		del("Content-Length")
		hasCL = false
	}
	switch {
	case isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		del("Transfer-Encoding")
	case hasCL:
		del("Transfer-Encoding")
	case w.req.ProtoAtLeast(1, 1):
		if hasTE && teh == "identity" {
			w.chunking = false
			w.closeAfterReply = true
			del("Transfer-Encoding")
		} else {
			w.chunking = true
			te = "chunked"
			if hasTE && teh == "chunked" {
				del("Transfer-Encoding")
			}
		}
	default:
		w.closeAfterReply = true
		del("Transfer-Encoding")
	}
	if w.chunking {
		del("Content-Length")
		clen = ""
	}
	if w.closeAfterReply && (!keepAlives || !hasToken(header.Get("Connection"), "close")) && !isProtocolSwitch(code, header) {
		del("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			conn = "close"
		}
	}

	w.bodyMu.Lock()
	defer w.bodyMu.Unlock()
	w.body.canContinue = false
	bw := c.bw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code)
	w.writeSubset(bw, header, false)
	if date != "" {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(date)
		_, _ = bw.WriteString("\r\n")
	}
	if clen != "" {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.WriteString(clen)
		_, _ = bw.WriteString("\r\n")
	}
	for i, v := range [...]string{ct, conn, te} {
		if v != "" {
			_, _ = bw.WriteString([...]string{"Content-Type: ", "Connection: ", "Transfer-Encoding: "}[i])
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	if !final && len(p) > 0 {
		// What was held goes out as the body's first part.
		c.pending = c.pending[:0]
		_, err = w.writeBodyLocked(p)
	}
	return err
}

// sniffed returns the first 512 bytes of a then b.
func sniffed(a, b []byte) []byte {
	const n = 512
	if len(a) >= n || len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]byte, 0, n)
	out = append(out, a...)
	return append(out, b[:min(len(b), n-len(a))]...)
}

// drainBody reads up to maxPostHandlerReadBytes of the request body the
// handler left, in net/http's order of checks; when more is left, the
// connection closes after the answer.
func (w *response) drainBody() {
	b := w.body
	b.mu.Lock()
	expect, wrote, closed, done := b.expectContinue, b.wroteContinue, b.closed, b.done
	unread := int64(-1)
	if cl := w.req.ContentLength; cl > 0 {
		unread = cl - b.read
	}
	b.mu.Unlock()
	switch {
	case expect:
		if !wrote {
			return
		}
	case closed:
		if !done {
			w.tooBig()
		}
		return
	case unread >= maxPostHandlerReadBytes:
		w.tooBig()
		return
	}
	_, err := io.CopyN(io.Discard, b, maxPostHandlerReadBytes+1)
	switch {
	case err == nil:
		w.tooBig()
	case err == io.EOF:
	case err == http.ErrBodyReadAfterClose:
		// net/http's body closed itself on a broken trailer: no more
		// requests on this connection (but an Expect body is not looked
		// at that closely).
		if !expect {
			w.tooBig()
		}
	default:
		w.closeAfterReply = true
	}
}

func (w *response) tooBig() {
	w.closeAfterReply = true
	w.bodyLimitHit = true
	delete(w.c.snap, "Connection")
}

// finalTrailers returns the trailers the handler set.
func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		for _, v := range w.handlerHeader[k] {
			if t == nil {
				t = make(http.Header)
			}
			t.Add(k, v)
		}
	}
	return t
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// writeSubset writes h's fields in key order, as net/http: values with line
// breaks made spaces, invalid names and trailer names left out, and for an
// informational answer no length or transfer encoding.
func (w *response) writeSubset(bw *bufio.Writer, h http.Header, informational bool) {
	keys := w.c.keys[:0]
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if informational && (k == "Content-Length" || k == "Transfer-Encoding") {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v)
			}
			v = textproto.TrimString(v)
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	clear(keys)
	w.c.keys = keys[:0]
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		_, _ = bw.WriteString("HTTP/1.1 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.0 ")
	}
	var b [3]byte
	_, _ = bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		_, _ = bw.WriteString(text)
	} else {
		_, _ = bw.WriteString("status code ")
		_, _ = bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	}
	_, _ = bw.WriteString("\r\n")
}

func bodyAllowedForStatus(code int) bool {
	switch {
	case code >= 100 && code <= 199:
		return false
	case code == http.StatusNoContent, code == http.StatusNotModified:
		return false
	}
	return true
}

func isProtocolSwitch(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && hasToken(h.Get("Connection"), "upgrade") && h.Get("Upgrade") != ""
}

// dates caches the Date header's value for the current second.
var dates atomic.Pointer[dateValue]

type dateValue struct {
	sec int64
	s   string
}

func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := dates.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &dateValue{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	dates.Store(d)
	return d.s
}

// reqBody is a request's body as the handler sees it: it sends 100
// Continue on the first read when the client waits for it, and remembers
// whether the body was read to its end or closed before.
type reqBody struct {
	rc          io.ReadCloser
	w           *response
	mu          sync.Mutex
	read        int64
	done        bool // read to EOF
	closed      bool
	early       bool // closed with more than the server reads left
	eof         bool // a Read returned io.EOF
	canContinue bool // guarded by w.bodyMu
	// expectContinue: the client sent Expect: 100-continue;
	// wroteContinue: the server answered it.
	expectContinue bool
	wroteContinue  bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	b.mu.Unlock()
	w := b.w
	w.bodyMu.Lock()
	if b.canContinue {
		b.canContinue = false
		b.wroteContinue = true
		bw := w.c.bw
		_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		_ = bw.Flush()
	}
	w.bodyMu.Unlock()
	n, err := b.rc.Read(p)
	b.mu.Lock()
	b.read += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF && b.w.req.ContentLength > 0 {
		b.done = true
	} else if err != nil && err.Error() == "http: request body too large" {
		w.bodyLimitHit = true
	}
	b.mu.Unlock()
	return n, err
}

// Close ends the body as net/http's server does: what is left of it is
// read (up to maxPostHandlerReadBytes) so that the connection can take the
// next request; when more is left, the connection closes after the answer.
func (b *reqBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.done {
		return nil
	}
	if cl := b.w.req.ContentLength; cl > 0 && cl-b.read > maxPostHandlerReadBytes {
		b.early = true
		return nil
	}
	n, err := io.CopyN(io.Discard, b.rc, maxPostHandlerReadBytes)
	b.read += n
	switch {
	case err == io.EOF:
		b.done = true
	case err == io.ErrUnexpectedEOF && b.w.req.ContentLength > 0:
		// A body shorter than its length: net/http counts its end as
		// seen (not a chunked one's).
		b.done = true
		return err
	case n == maxPostHandlerReadBytes:
		b.early = true
	case err != nil:
		b.early = true
		return err
	}
	return nil
}

// readToEOF reports whether the handler read the body to io.EOF.
func (b *reqBody) readToEOF() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

func (b *reqBody) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// closedEarly reports whether the body was closed with more left than
// the server reads.
func (b *reqBody) closedEarly() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.early
}
