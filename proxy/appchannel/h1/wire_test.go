package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: Mon, 07 Dec 2026 03:00:00 GMT\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\nETag: W/\"2-vyGp6PvFo4RvsFtPoIWeCReyIC8\"\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n{}",
	"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nconnection: close\r\n\r\nno!",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.0 200 OK\r\n\r\nuntil close",
	"HTTP/1.1 200 OK\r\nA: 1\r\nA: 2\r\nContent-Length: 4\r\n\r\nabcdHTTP/1.1 200 OK\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200\r\nx-lower_name:  padded \t\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 500 Internal Server Error\r\nConnection: Close\r\nContent-Length: 1\r\n\r\nx",
}

// FuzzParseResponse holds the fast parser to http.ReadResponse: whatever
// it takes, ReadResponse takes too, with the same status, headers, length,
// close flag, body and the same bytes left for the next response.
func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		req := &http.Request{Method: http.MethodGet}
		if head {
			req.Method = http.MethodHead
		}
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		_, _ = br.Peek(min(len(data), 4096))
		f, ok := parseResponse(br, req.Method, -1)
		if !ok {
			if br.Buffered() != min(len(data), 4096) {
				t.Fatal("a response the fast parser declined was consumed")
			}
			return
		}
		sbr := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		std, err := http.ReadResponse(sbr, req)
		if err != nil {
			t.Fatalf("fast parser took %q, ReadResponse refused it: %v", data, err)
		}
		compareResponses(t, &f.resp, std)
		rest, _ := io.ReadAll(br)
		srest, _ := io.ReadAll(sbr)
		if !bytes.Equal(rest, srest) {
			t.Fatalf("left %q for the next response, ReadResponse %q", rest, srest)
		}
	})
}

func compareResponses(t *testing.T, got, want *http.Response) {
	t.Helper()
	if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor {
		t.Fatalf("status %q %d %s, ReadResponse %q %d %s", got.Status, got.StatusCode, got.Proto, want.Status, want.StatusCode, want.Proto)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("header %q, ReadResponse %q", got.Header, want.Header)
	}
	if got.ContentLength != want.ContentLength || got.Close != want.Close {
		t.Fatalf("length %d close %v, ReadResponse %d %v", got.ContentLength, got.Close, want.ContentLength, want.Close)
	}
	body, err := io.ReadAll(got.Body)
	sbody, serr := io.ReadAll(want.Body)
	if !bytes.Equal(body, sbody) || !errors.Is(err, serr) && (err == nil || serr == nil || err.Error() != serr.Error()) {
		t.Fatalf("body %q (%v), ReadResponse %q (%v)", body, err, sbody, serr)
	}
}

func TestParseResponseTakesPlainAnswers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{responseSeeds[0], true},
		{responseSeeds[1], true}, // Express's keep-alive headers
		{responseSeeds[2], true}, // lower-case names, Connection: close
		{responseSeeds[3], true},
		{responseSeeds[4], false}, // chunked
		{responseSeeds[5], false}, // 204
		{responseSeeds[6], false}, // 100 Continue first
		{responseSeeds[7], false}, // HTTP/1.0, body to the close
		{responseSeeds[11], false},
		{responseSeeds[13], false},                          // Pragma
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", false}, // head not whole yet
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		_, _ = br.Peek(len(tc.in))
		f, ok := parseResponse(br, http.MethodGet, -1)
		if ok != tc.fast {
			t.Errorf("%q: fast %v, want %v", tc.in, ok, tc.fast)
			continue
		}
		if !ok {
			continue
		}
		std, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tc.in)), nil)
		if err != nil {
			t.Fatal(err)
		}
		compareResponses(t, &f.resp, std)
	}
	// The head must fit the limit.
	br := bufio.NewReader(strings.NewReader(responseSeeds[0]))
	_, _ = br.Peek(len(responseSeeds[0]))
	if _, ok := parseResponse(br, http.MethodGet, 20); ok {
		t.Error("a head over the limit was parsed")
	}
}

// requestWire writes req with write and reads it back as a server would.
func requestWire(t *testing.T, write func(*bufio.Writer) error) (*http.Request, []byte) {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := write(bw); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = bw.Flush()
	raw := bytes.Clone(buf.Bytes())
	r, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("read back %q: %v", raw, err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("read back body of %q: %v", raw, err)
	}
	return r, body
}

// FuzzWriteRequest holds the fast writer to http.Request.Write: a server
// reads the same request from both.
func FuzzWriteRequest(f *testing.F) {
	f.Add("POST", "/method/echo", "a=1&b=2", "127.0.0.1:3000", "Content-Type", "application/json", []byte(`{"x":1}`), false)
	f.Add("GET", "/a%2Fb/c", "", "localhost", "User-Agent", "dapr-sdk-go/v1.13", []byte(nil), false)
	f.Add("DELETE", "/x", "", "app:80", "X-Empty", "", []byte(nil), true)
	f.Add("PUT", "/", "q", "h", "Traceparent", " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ", []byte("body"), false)
	f.Fuzz(func(t *testing.T, method, path, query, host, key, value string, body []byte, noUA bool) {
		u := &url.URL{Scheme: "http", Host: host, Path: path, RawQuery: query}
		build := func() *http.Request {
			req := &http.Request{Method: method, URL: u, Host: host, Header: http.Header{key: {value}}, ContentLength: int64(len(body))}
			if noUA {
				req.Header["User-Agent"] = []string{""}
			}
			if len(body) > 0 {
				req.Body = io.NopCloser(bytes.NewReader(body))
			}
			return req
		}
		if _, ok := fastRequest(build()); !ok {
			return
		}
		std := build()
		var sbuf bytes.Buffer
		if err := std.Write(&sbuf); err != nil {
			t.Fatalf("the fast writer takes a request Request.Write refuses: %v", err)
		}
		want, err := http.ReadRequest(bufio.NewReader(&sbuf))
		if err != nil {
			return // Request.Write wrote something no server takes
		}
		wantBody, _ := io.ReadAll(want.Body)
		got, gotBody := requestWire(t, func(bw *bufio.Writer) error { return writeRequest(bw, build()) })
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			got.ContentLength != want.ContentLength || !bytes.Equal(gotBody, wantBody) {
			t.Fatalf("read back %s %s host %q length %d body %q; Request.Write's %s %s %q %d %q",
				got.Method, got.RequestURI, got.Host, got.ContentLength, gotBody,
				want.Method, want.RequestURI, want.Host, want.ContentLength, wantBody)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("headers %q; Request.Write's %q", got.Header, want.Header)
		}
	})
}

func TestWriteRequestBodyLength(t *testing.T) {
	u := &url.URL{Scheme: "http", Host: "h", Path: "/p"}
	for _, tc := range []struct {
		n    int64
		body string
	}{{5, "abc"}, {2, "abc"}} {
		req := &http.Request{Method: http.MethodPost, URL: u, Host: "h", Header: http.Header{},
			ContentLength: tc.n, Body: io.NopCloser(strings.NewReader(tc.body))}
		if _, ok := fastRequest(req); !ok {
			t.Fatal("a plain POST was not written by the fast writer")
		}
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		if err := writeRequest(bw, req); err == nil {
			t.Errorf("ContentLength %d with a %d-byte body: no error", tc.n, len(tc.body))
		}
	}
}
