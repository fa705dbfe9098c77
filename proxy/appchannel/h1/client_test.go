package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server is an httptest server that counts the connections it accepted.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// newReq builds a request; a body is replayable (NewRequest sets GetBody
// for a bytes.Reader).
func newReq(t *testing.T, ctx context.Context, method, addr, path string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t *testing.T, cl *Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

func TestKeepAliveAndWire(t *testing.T) {
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo-Query", r.URL.RawQuery)
		w.Header().Set("X-Echo-Len", fmt.Sprint(r.ContentLength))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	addr := srv.Listener.Addr().String()
	cl := New(Config{Addr: addr})
	t.Cleanup(cl.CloseIdleConnections)
	for i := range 20 {
		body := []byte(fmt.Sprintf("payload-%d", i))
		req := newReq(t, context.Background(), http.MethodPost, addr, "/a/b?x=1&y=%20", body)
		resp, got := do(t, cl, req)
		if resp.StatusCode != http.StatusCreated || got != "POST /a/b "+string(body) ||
			resp.Header.Get("X-Echo-Query") != "x=1&y=%20" || resp.Header.Get("X-Echo-Len") != fmt.Sprint(len(body)) {
			t.Fatalf("request %d: status %d body %q headers %v", i, resp.StatusCode, got, resp.Header)
		}
	}
	// Bodiless and HEAD requests, and a response read with io.ReadFull
	// (no EOF seen) still leave the connection reusable.
	req := newReq(t, context.Background(), http.MethodHead, addr, "/h", nil)
	if resp, got := do(t, cl, req); resp.StatusCode != http.StatusCreated || got != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, got)
	}
	req = newReq(t, context.Background(), http.MethodGet, addr, "/exact", nil)
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "GET /exact " {
		t.Fatalf("ReadFull: %q %v", buf, err)
	}
	_ = resp.Body.Close()
	req = newReq(t, context.Background(), http.MethodGet, addr, "/last", nil)
	do(t, cl, req)
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for sequential requests, want 1 (keep-alive)", n)
	}
}

func TestChunkedResponseAndEarlyClose(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		_, _ = io.WriteString(w, "part1-")
		w.(http.Flusher).Flush() // no Content-Length: chunked
		_, _ = io.WriteString(w, "part2")
	})
	addr := srv.Listener.Addr().String()
	cl := New(Config{Addr: addr})
	t.Cleanup(cl.CloseIdleConnections)
	req := newReq(t, context.Background(), http.MethodGet, addr, "/chunked", nil)
	resp, got := do(t, cl, req)
	if got != "part1-part2" || resp.ContentLength != -1 {
		t.Fatalf("chunked: %q (length %d)", got, resp.ContentLength)
	}
	// A body abandoned half way closes its connection: the next request
	// must not read the rest of it as its response.
	req = newReq(t, context.Background(), http.MethodGet, addr, "/big", nil)
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	req = newReq(t, context.Background(), http.MethodGet, addr, "/chunked", nil)
	if _, got := do(t, cl, req); got != "part1-part2" {
		t.Fatalf("after an abandoned body: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the abandoned one closed, the rest reused)", n)
	}
}

// rawServer answers each connection with handle, which gets the request
// already parsed.
func rawServer(t *testing.T, handle func(n int, c net.Conn, r *http.Request) bool) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(conns.Add(1))
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					if !handle(n, c, r) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &conns
}

func TestServerClosedIdleConnection(t *testing.T) {
	// The server answers one request per connection and then closes it
	// without saying "Connection: close", as a keep-alive timeout does.
	addr, conns := rawServer(t, func(_ int, c net.Conn, _ *http.Request) bool {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	cl := New(Config{Addr: addr})
	t.Cleanup(cl.CloseIdleConnections)
	for i := range 5 {
		req := newReq(t, context.Background(), http.MethodPost, addr, "/p", []byte("body"))
		if _, got := do(t, cl, req); got != "ok" {
			t.Fatalf("request %d: %q", i, got)
		}
		time.Sleep(20 * time.Millisecond) // let the close arrive
	}
	if n := conns.Load(); n != 5 {
		t.Fatalf("%d connections, want 5", n)
	}
}

func TestRetryRules(t *testing.T) {
	for _, tt := range []struct {
		method    string
		wantErr   bool
		wantTries int64
	}{
		{http.MethodGet, false, 2},   // idempotent: sent again on a new connection
		{http.MethodPost, true, 1},   // the server may have acted on it: not again
		{http.MethodDelete, true, 1}, // same
	} {
		for _, wire := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/wire=%v", tt.method, wire), func(t *testing.T) { testRetry(t, tt.method, wire, tt.wantErr, tt.wantTries) })
		}
	}
}

// testRetry sends a request with this method (an http.Request to
// RoundTrip, or a WireRequest to Send) on a connection the server closes
// after reading it.
func testRetry(t *testing.T, method string, wire, wantErr bool, wantTries int64) {
	// Connection 1 answers /warm, then reads /x and closes without
	// a byte of answer; later connections answer.
	var tries atomic.Int64
	addr, _ := rawServer(t, func(n int, c net.Conn, r *http.Request) bool {
		if r.URL.Path == "/warm" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		tries.Add(1)
		if n == 1 {
			return false
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")
		return true
	})
	cl := New(Config{Addr: addr})
	defer cl.CloseIdleConnections()
	req := newReq(t, context.Background(), http.MethodGet, addr, "/warm", nil)
	do(t, cl, req)
	var resp *http.Response
	var err error
	w := &wireReq{method: method, path: "/x", body: "b"}
	if wire {
		resp, err = cl.Send(context.Background(), w)
	} else {
		resp, err = cl.RoundTrip(newReq(t, context.Background(), method, addr, "/x", []byte("b")))
	}
	if (err != nil) != wantErr {
		t.Fatalf("err = %v, want error %v", err, wantErr)
	}
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "yes" {
			t.Fatalf("body %q", b)
		}
	}
	if got := tries.Load(); got != wantTries || wire && int64(w.writes) != wantTries {
		t.Fatalf("server saw %d tries (%d written), want %d", got, w.writes, wantTries)
	}
}

func TestInformationalAndHeaderLimit(t *testing.T) {
	addr, _ := rawServer(t, func(_ int, c net.Conn, r *http.Request) bool {
		if r.URL.Path == "/huge" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 8<<10)+"\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone")
		return true
	})
	cl := New(Config{Addr: addr, MaxHeaderBytes: 4 << 10})
	t.Cleanup(cl.CloseIdleConnections)
	req := newReq(t, context.Background(), http.MethodGet, addr, "/hints", nil)
	if resp, got := do(t, cl, req); resp.StatusCode != http.StatusAccepted || got != "done" {
		t.Fatalf("after 103: %d %q", resp.StatusCode, got)
	}
	req = newReq(t, context.Background(), http.MethodGet, addr, "/huge", nil)
	if _, err := cl.RoundTrip(req); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("8 KiB header with a 4 KiB limit: %v, want ErrHeaderTooLarge", err)
	}
}

func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "fine")
	})
	defer close(release)
	addr := srv.Listener.Addr().String()
	cl := New(Config{Addr: addr})
	t.Cleanup(cl.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req := newReq(t, ctx, http.MethodGet, addr, "/stall", nil)
	start := time.Now()
	_, err := cl.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled server: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	req = newReq(t, context.Background(), http.MethodGet, addr, "/ok", nil)
	if _, got := do(t, cl, req); got != "fine" {
		t.Fatalf("after a cancelled call: %q", got)
	}
}

// TestContextCancelWithoutDeadline cancels stalled calls before and after
// WatchAfter: both end with context.Canceled, the connection they cut is
// not reused, and a context cancelled before the call sends nothing.
func TestContextCancelWithoutDeadline(t *testing.T) {
	var stalled atomic.Int32
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall" {
			stalled.Add(1)
			// Answers after 2 s unless the client leaves: a call the
			// watch does not cut gets an answer instead of an error.
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "fine")
	})
	addr := srv.Listener.Addr().String()
	cl := New(Config{Addr: addr})
	t.Cleanup(cl.CloseIdleConnections)
	for _, after := range []time.Duration{WatchAfter / 5, 3 * WatchAfter} {
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(after, cancel)
		start := time.Now()
		_, err := cl.RoundTrip(newReq(t, ctx, http.MethodGet, addr, "/stall", nil))
		timer.Stop()
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %v: %v, want context.Canceled", after, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("cancelled after %v: the call ended after %v", after, d)
		}
		if _, got := do(t, cl, newReq(t, context.Background(), http.MethodGet, addr, "/ok", nil)); got != "fine" {
			t.Fatalf("after a call cancelled at %v: %q", after, got)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := stalled.Load()
	if _, err := cl.RoundTrip(newReq(t, ctx, http.MethodGet, addr, "/stall", nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v, want context.Canceled", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := stalled.Load() - before; n != 0 {
		t.Fatalf("a call with a cancelled context reached the server %d times", n)
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cl := New(Config{Addr: addr})
	req := newReq(t, context.Background(), http.MethodGet, addr, "/", nil)
	if _, err := cl.RoundTrip(req); err == nil {
		t.Fatal("no error from a closed port")
	}
}

// wireReq is a WireRequest that writes a fixed request and counts its writes.
type wireReq struct {
	method, path, body string
	writes             int
}

func (w *wireReq) Method() string { return w.method }

func (w *wireReq) WriteRequest(bw *bufio.Writer) error {
	w.writes++
	_, err := fmt.Fprintf(bw, "%s %s HTTP/1.1\r\nHost: app\r\nX-Wire: yes\r\nContent-Length: %d\r\n\r\n%s", w.method, w.path, len(w.body), w.body)
	return err
}

func TestSendWritesTheWireRequest(t *testing.T) {
	srv, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Header.Get("X-Wire")+" "+r.Host)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	cl := New(Config{Addr: srv.Listener.Addr().String()})
	t.Cleanup(cl.CloseIdleConnections)
	for i := range 10 {
		w := &wireReq{method: http.MethodPost, path: "/w", body: fmt.Sprint("b", i)}
		resp, err := cl.Send(context.Background(), w)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "POST /w "+w.body || resp.Header.Get("X-Seen") != "yes app" || resp.Request != nil || w.writes != 1 {
			t.Fatalf("request %d: %q, header %v, request %v, %d writes", i, b, resp.Header, resp.Request, w.writes)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 10 sequential requests, want 1", n)
	}
	// A HEAD answer (parsed by ReadResponse, which needs the method) has no
	// body, whatever its Content-Length says.
	resp, err := cl.Send(context.Background(), &wireReq{method: http.MethodHead, path: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); len(b) != 0 || resp.Request != nil {
		t.Fatalf("HEAD: body %q, request %v", b, resp.Request)
	}
	_ = resp.Body.Close()
}
