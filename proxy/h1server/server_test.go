package h1server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// handler answers by path, in the ways handlers answer: small and large
// bodies, flushes, declared lengths (right and wrong), 1xx/204/304,
// trailers, HEAD, panics, unread and closed request bodies.
func handler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.URL.Path {
	case "/small":
		_, _ = io.WriteString(w, "hello")
	case "/json":
		h.Set("Content-Type", "application/json")
		h.Add("X-Multi", "a")
		h.Add("X-Multi", "b")
		_, _ = w.Write([]byte(`{"ok":true}`))
	case "/big":
		for range 10 {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 1000))
		}
	case "/bigone":
		_, _ = w.Write(append([]byte("<html><body>"), bytes.Repeat([]byte("y"), 5000)...))
	case "/grow":
		_, _ = w.Write(bytes.Repeat([]byte("a"), 100))
		_, _ = w.Write(append([]byte("<html>"), bytes.Repeat([]byte("b"), 3000)...))
	case "/flush":
		_, _ = io.WriteString(w, "one")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "two")
	case "/flushempty":
		w.(http.Flusher).Flush()
	case "/cl":
		h.Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	case "/clshort":
		h.Set("Content-Length", "10")
		_, _ = io.WriteString(w, "hello")
	case "/cllong":
		h.Set("Content-Length", "3")
		_, err := io.WriteString(w, "hello")
		h.Set("X-Err", fmt.Sprint(err)) // after the header: not sent
	case "/clbad":
		h.Set("Content-Length", "abc")
		_, _ = io.WriteString(w, "hi")
	case "/nowrite":
	case "/error":
		http.Error(w, "bad thing", http.StatusBadRequest)
	case "/close":
		h.Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	case "/identity":
		h.Set("Transfer-Encoding", "identity")
		_, _ = io.WriteString(w, "until close")
	case "/techunked":
		h.Set("Transfer-Encoding", "chunked")
		_, _ = io.WriteString(w, "chunks")
	case "/nosniff":
		h["Content-Type"] = nil
		_, _ = io.WriteString(w, "<html>")
	case "/ce":
		h.Set("Content-Encoding", "gzip")
		_, _ = io.WriteString(w, "<html>")
	case "/date":
		h.Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
		_, _ = io.WriteString(w, "dated")
	case "/nodate":
		h["Date"] = nil
	case "/newline":
		h.Set("X-Line", "a\r\nb")
		h["X-Spaces"] = []string{"  padded  "}
		h["Bad Name"] = []string{"dropped"}
	case "/after":
		w.WriteHeader(http.StatusAccepted)
		h.Set("X-After", "ignored")
		_, _ = io.WriteString(w, "accepted")
	case "/twice":
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusConflict)
	case "/204":
		w.WriteHeader(http.StatusNoContent)
		_, err := io.WriteString(w, "no")
		_ = err
	case "/304":
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", "10")
		w.WriteHeader(http.StatusNotModified)
	case "/999":
		w.WriteHeader(999)
	case "/103":
		h.Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "final")
	case "/trailer":
		h.Set("Trailer", "X-T, Content-Length, x-other")
		_, _ = io.WriteString(w, "body")
		h.Set("X-T", "tv")
		h.Set("X-Other", "o")
	case "/trailerprefix":
		_, _ = io.WriteString(w, "body")
		h.Set(http.TrailerPrefix+"X-P", "pv")
	case "/echo":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.Set("X-Len", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	case "/ignorebody":
		_, _ = io.WriteString(w, "ignored")
	case "/closebody":
		_ = r.Body.Close()
		_, _ = io.WriteString(w, "closed")
	case "/readsome":
		buf := make([]byte, 10)
		_, _ = io.ReadFull(r.Body, buf)
		_, _ = w.Write(buf)
	case "/panic":
		panic("boom")
	case "/abort":
		_, _ = io.WriteString(w, strings.Repeat("z", 5000))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case "/request":
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		})
		fmt.Fprintf(w, "%s %s %s host=%s uri=%s url=%s len=%d te=%v close=%v remote=%v trailer=%v\n", r.Method, r.URL.Path, r.Proto, r.Host, r.RequestURI,
			r.URL, r.ContentLength, r.TransferEncoding, r.Close, r.RemoteAddr != "", r.Trailer)
		for _, k := range keys {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
		}
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%q err=%v trailer=%v\n", b, err, r.Trailer)
	default:
		http.NotFound(w, r)
	}
}

// servers starts net/http's server and this one with the same handler and
// limits, and returns their addresses.
func servers(t testing.TB, h http.Handler) (nethttp, ours string) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	std := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 4096,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	srv := &Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 4096, Log: quiet}
	go func() { _ = std.Serve(ln1) }()
	go func() { _ = srv.Serve(ln2) }()
	t.Cleanup(func() {
		_ = std.Close()
		_ = srv.Close()
	})
	return ln1.Addr().String(), ln2.Addr().String()
}

// exchange sends raw on a new connection (then closes its write side when
// halfClose) and returns what came back: each answer's status, header
// (without Date), body and trailers, then whether the connection closed.
func exchangeRaw(t testing.TB, addr, raw string, methods []string, halfClose bool) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	var out strings.Builder
	for i := 0; i < len(methods); {
		req := &http.Request{Method: methods[i]}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			fmt.Fprintf(&out, "read error: %v\n", errors.Unwrap(err) != nil || err != nil)
			return out.String()
		}
		resp.Header.Del("Date")
		body, berr := io.ReadAll(resp.Body)
		fmt.Fprintf(&out, "%s %d\n", resp.Proto, resp.StatusCode)
		for _, k := range slices.Sorted(mapKeys(resp.Header)) {
			fmt.Fprintf(&out, "  %s: %q\n", k, resp.Header[k])
		}
		fmt.Fprintf(&out, "  length=%d te=%v close=%v body=%q bodyerr=%v trailer=%v\n", resp.ContentLength, resp.TransferEncoding, resp.Close, body, berr != nil, resp.Trailer)
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			i++
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var one [1]byte
	_, err = br.Read(one[:])
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		out.WriteString("connection open\n")
	case err != nil:
		out.WriteString("connection closed\n")
	default:
		out.WriteString("more bytes\n")
	}
	return out.String()
}

func mapKeys(h http.Header) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	}
}

type rawCase struct {
	name    string
	raw     string
	methods []string // one per final answer expected
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: example\r\n\r\n" }

var rawCases = func() []rawCase {
	var cs []rawCase
	for _, p := range []string{"/small", "/json", "/big", "/bigone", "/grow", "/flush", "/flushempty", "/cl", "/clshort", "/cllong", "/clbad",
		"/nowrite", "/error", "/close", "/identity", "/techunked", "/nosniff", "/ce", "/date", "/nodate", "/newline", "/after", "/twice",
		"/204", "/304", "/999", "/103", "/trailer", "/trailerprefix", "/missing", "/panic", "/abort", "/request", "/request?q=1&x=%20"} {
		// Each path twice on one connection: the second shows whether the
		// connection was kept.
		cs = append(cs, rawCase{"GET " + p, get(p) + get("/small"), []string{"GET", "GET"}})
	}
	for _, p := range []string{"/small", "/big", "/cl", "/nowrite", "/request", "/trailer", "/flush"} {
		cs = append(cs, rawCase{"HEAD " + p, "HEAD " + p + " HTTP/1.1\r\nHost: h\r\n\r\n" + get("/small"), []string{"HEAD", "GET"}})
	}
	post := func(path, hdr, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: h\r\n" + hdr + "\r\n" + body
	}
	big := strings.Repeat("B", 300<<10)
	mid := strings.Repeat("M", 100<<10)
	cs = append(cs,
		rawCase{"POST echo length", post("/echo", "Content-Length: 5\r\n", "hello") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST echo chunked", post("/echo", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST request chunked trailer", post("/request", "Transfer-Encoding: chunked\r\nTrailer: X-Tr\r\n", "2\r\nhi\r\n0\r\nX-Tr: v\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST ignore small body", post("/ignorebody", "Content-Length: 5\r\n", "hello") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST ignore mid body", post("/ignorebody", "Content-Length: "+strconv.Itoa(len(mid))+"\r\n", mid) + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST ignore big body", post("/ignorebody", "Content-Length: "+strconv.Itoa(len(big))+"\r\n", big) + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST ignore chunked body", post("/ignorebody", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST close body", post("/closebody", "Content-Length: 5\r\n", "hello") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST read some", post("/readsome", "Content-Length: 20\r\n", "0123456789abcdefghij") + get("/small"), []string{"POST", "GET"}},
		rawCase{"POST CRLF after body", post("/echo", "Content-Length: 2\r\n", "hi") + "\r\n" + get("/small"), []string{"POST", "GET"}},
		rawCase{"expect continue", post("/echo", "Content-Length: 5\r\nExpect: 100-continue\r\n", "hello") + get("/small"), []string{"POST", "GET"}},
		rawCase{"expect continue unread", post("/ignorebody", "Content-Length: 5\r\nExpect: 100-continue\r\n", "hello"), []string{"POST"}},
		rawCase{"expect other", post("/echo", "Content-Length: 5\r\nExpect: teapot\r\n", "hello"), []string{"POST"}},
		rawCase{"connection close", "GET /small HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", []string{"GET"}},
		rawCase{"HTTP/1.0", "GET /small HTTP/1.0\r\n\r\n", []string{"GET"}},
		rawCase{"HTTP/1.0 keep-alive", "GET /small HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", []string{"GET", "GET"}},
		rawCase{"HTTP/1.0 keep-alive cl", "GET /cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/small"), []string{"GET", "GET"}},
		rawCase{"no host", "GET /small HTTP/1.1\r\n\r\n", []string{"GET"}},
		rawCase{"two hosts", "GET /small HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []string{"GET"}},
		rawCase{"bad host", "GET /small HTTP/1.1\r\nHost: a b\r\n\r\n", []string{"GET"}},
		rawCase{"bad request line", "GARBAGE\r\n\r\n", []string{"GET"}},
		rawCase{"bad version", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", []string{"GET"}},
		rawCase{"bad header", "GET /small HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n", []string{"GET"}},
		rawCase{"header too large", "GET /small HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("h", 10000) + "\r\n\r\n", []string{"GET"}},
		rawCase{"unsupported TE", post("/echo", "Transfer-Encoding: gzip\r\n", "x"), []string{"POST"}},
		rawCase{"LF line ends", "GET /request HTTP/1.1\nHost: h\nX-A: 1\n\n", []string{"GET"}},
		rawCase{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n" + get("/small"), []string{"OPTIONS", "GET"}},
		rawCase{"absolute URI", "GET http://other/request?a=b HTTP/1.1\r\nHost: h\r\n\r\n", []string{"GET"}},
		rawCase{"pipelined three", get("/small") + get("/big") + get("/json"), []string{"GET", "GET", "GET"}},
		rawCase{"PUT no body", "PUT /request HTTP/1.1\r\nHost: h\r\n\r\n", []string{"PUT"}},
		rawCase{"DELETE length 0", "DELETE /request HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", []string{"DELETE"}},
		rawCase{"duplicate content length", post("/echo", "Content-Length: 2\r\nContent-Length: 3\r\n", "hi"), []string{"POST"}},
	)
	return cs
}()

// TestServerAnswersAsNetHTTP sends the same bytes to net/http's server and
// to this one, both serving the same handler, and requires the same
// answers: status, header but Date, body, trailers, and whether the
// connection stays open.
func TestServerAnswersAsNetHTTP(t *testing.T) {
	std, ours := servers(t, http.HandlerFunc(handler))
	for _, c := range rawCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, half := range []bool{false, true} {
				want := exchangeRaw(t, std, c.raw, c.methods, half)
				got := exchangeRaw(t, ours, c.raw, c.methods, half)
				if got != want {
					t.Errorf("half-closed %v:\nnet/http:\n%s\nh1server:\n%s", half, want, got)
				}
			}
		})
	}
}

// TestSlowHandlerCancelledWhenClientLeaves: a handler still running after
// WatchAfter has its context cancelled when the client closes the
// connection, as with net/http.
func TestSlowHandlerCancelledWhenClientLeaves(t *testing.T) {
	cancelled := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(5 * time.Second):
			cancelled <- nil
		}
	})
	_, ours := servers(t, h)
	c, err := net.Dial("tcp", ours)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, get("/slow"))
	time.Sleep(3 * WatchAfter)
	_ = c.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler's context: %v, want canceled", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("handler's context not cancelled after the client left")
	}
}

// TestQuickHandlerNotCancelled: a request answered before WatchAfter, and
// then the next on the same connection (the watch's byte handed back).
func TestWatchedConnectionServesNextRequest(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * WatchAfter)
		}
		if err := r.Context().Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	_, ours := servers(t, h)
	c, err := net.Dial("tcp", ours)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, get("/slow"))
	// The next request arrives while the first is watched.
	time.Sleep(2 * WatchAfter)
	_, _ = io.WriteString(c, get("/next"))
	for _, want := range []string{"/slow", "/next"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("answer %d %q, want 200 %q", resp.StatusCode, b, want)
		}
	}
}

// TestShutdownWaitsForActiveRequests: Shutdown closes idle connections at
// once and waits for a request in flight, which gets its answer.
func TestShutdownWaitsForActiveRequests(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, get("/quick"))
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("quick: %v", err)
	}
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = io.WriteString(busy, get("/slow"))
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v, want ErrServerClosed", err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection still open after Shutdown began")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Close {
		t.Error("answer during shutdown does not say Connection: close")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestServesNetHTTPClient: net/http's client (keep-alive, many requests,
// concurrent) against the server.
func TestServesNetHTTPClient(t *testing.T) {
	_, ours := servers(t, http.HandlerFunc(handler))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			for i := range 200 {
				body := strings.Repeat("q", i*37)
				resp, err := client.Post("http://"+ours+"/echo", "text/plain", strings.NewReader(body))
				if err != nil {
					errc <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != body {
					errc <- fmt.Errorf("echo %d: %v, %d bytes back", i, err, len(b))
					return
				}
			}
			errc <- nil
		}()
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzServerAnswersAsNetHTTP: any bytes get the same answers from both.
func FuzzServerAnswersAsNetHTTP(f *testing.F) {
	for _, c := range rawCases {
		if len(c.raw) < 2000 {
			f.Add(c.raw)
		}
	}
	std, ours := servers(f, http.HandlerFunc(handler))
	f.Fuzz(func(t *testing.T, raw string) {
		methods := []string{"GET", "GET"}
		if strings.HasPrefix(raw, "HEAD") {
			methods[0] = "HEAD"
		}
		want := exchangeRaw(t, std, raw, methods, true)
		got := exchangeRaw(t, ours, raw, methods, true)
		if got != want {
			t.Errorf("request %q:\nnet/http:\n%s\nh1server:\n%s", raw, want, got)
		}
	})
}

// TestSilentConnectionClosed: a connection that sends no request is closed
// after ReadHeaderTimeout, by both servers; one kept after an answer may
// wait longer for its next request.
func TestSilentConnectionClosed(t *testing.T) {
	h := http.HandlerFunc(handler)
	std := &http.Server{Handler: h, ReadHeaderTimeout: 200 * time.Millisecond}
	ours := &Server{Handler: h, ReadHeaderTimeout: 200 * time.Millisecond}
	for name, srv := range map[string]interface{ Serve(net.Listener) error }{"net/http": std, "h1server": ours} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			defer ln.Close()
			silent, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			kept, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer kept.Close()
			_, _ = io.WriteString(kept, get("/small"))
			br := bufio.NewReader(kept)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = silent.SetReadDeadline(time.Now().Add(3 * time.Second))
			start := time.Now()
			if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("silent connection: %v, want EOF (closed by the server)", err)
			}
			if waited := time.Since(start); waited < 150*time.Millisecond {
				t.Errorf("closed after %s, before the header timeout", waited)
			}
			_ = kept.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			var ne net.Error
			if _, err := br.ReadByte(); !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("kept connection after %s idle: %v, want it still open", time.Since(start), err)
			}
		})
	}
	_ = std.Close()
	_ = ours.Close()
}

// flakyListener fails its first Accepts with EMFILE, as a process out of
// file descriptors sees.
type flakyListener struct {
	net.Listener
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeOutlivesTemporaryAcceptErrors: running out of file descriptors
// makes Serve wait and accept again, not return (which would stop the
// sidecar's API).
func TestServeOutlivesTemporaryAcceptErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: http.HandlerFunc(handler)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(&flakyListener{Listener: ln, fails: 3}) }()
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/small")
	if err != nil {
		t.Fatalf("GET after EMFILE: %v", err)
	}
	resp.Body.Close()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v on a temporary Accept error", err)
	default:
	}
}
