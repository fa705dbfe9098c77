package appchannel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/headers"
)

// seen is what the fake app observed.
type seen struct {
	method, path, rawQuery, proto string
	header                        http.Header
	body                          []byte
	contentLength                 int64
}

func fakeApp(t *testing.T, start func(*httptest.Server), reply func(w http.ResponseWriter)) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("app read body: %v", err)
		}
		ch <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Proto, r.Header.Clone(), b, r.ContentLength}
		reply(w)
	}))
	start(srv)
	t.Cleanup(srv.Close)
	return srv, ch
}

func portOf(t *testing.T, srv *httptest.Server) (string, int) {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	host, p, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(p)
	return host, port
}

func newReq(method string, verb commonv1.HTTPExtension_Verb, query, ct string, md headers.Metadata, body io.Reader, n int64) *invoke.Request {
	return &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{
				Method:        method,
				ContentType:   ct,
				HttpExtension: &commonv1.HTTPExtension{Verb: verb, Querystring: query},
			},
			Metadata: md,
		},
		Body:          body,
		ContentLength: n,
	}
}

func lv(v ...string) *internalsv1.ListStringValue { return &internalsv1.ListStringValue{Values: v} }

func TestHTTPInvoke(t *testing.T) {
	big := make([]byte, 5<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		protocol string
		start    func(*httptest.Server)
		req      *invoke.Request
		token    string
		check    func(t *testing.T, s seen)
	}{
		{
			name:  "verb path query headers",
			start: func(s *httptest.Server) { s.Start() },
			req: newReq("orders/42/../7", commonv1.HTTPExtension_PATCH, "a=1&b=%20x", "application/json", headers.Metadata{
				"x-custom":           lv("v1", "v2"),
				"connection":         lv("x-hop"),
				"x-hop":              lv("gone"),
				"keep-alive":         lv("gone"),
				"content-length":     lv("999"),
				"content-type":       lv("text/wrong"),
				":authority":         lv("caller:3500"),
				"grpc-timeout":       lv("1S"),
				"destination-app-id": lv("orders"),
				"x-trace-bin":        lv("AAEC"),
			}, strings.NewReader(`{"a":1}`), 7),
			token: "app-secret",
			check: func(t *testing.T, s seen) {
				if s.method != "PATCH" || s.path != "/orders/7" || s.rawQuery != "a=1&b=%20x" {
					t.Errorf("got %s %s ? %s", s.method, s.path, s.rawQuery)
				}
				if got := s.header.Values("X-Custom"); len(got) != 2 || got[1] != "v2" {
					t.Errorf("X-Custom = %v", got)
				}
				for _, h := range []string{"X-Hop", "Keep-Alive", "Destination-App-Id", "X-Trace-Bin", "Grpc-Timeout"} {
					if v := s.header.Get(h); v != "" {
						t.Errorf("%s forwarded: %q", h, v)
					}
				}
				if s.header.Get("Content-Type") != "application/json" {
					t.Errorf("content-type = %q", s.header.Get("Content-Type"))
				}
				if s.header.Get("Dapr-Authority") != "caller:3500" || s.header.Get("Dapr-Grpc-Timeout") != "1S" {
					t.Errorf("reserved names not prefixed: %v", s.header)
				}
				if s.header.Get("Dapr-Api-Token") != "app-secret" {
					t.Errorf("token = %q", s.header.Get("Dapr-Api-Token"))
				}
				if s.contentLength != 7 || string(s.body) != `{"a":1}` {
					t.Errorf("body %d %q", s.contentLength, s.body)
				}
			},
		},
		{
			name:  "chunked 5MiB streamed",
			start: func(s *httptest.Server) { s.Start() },
			req:   newReq("upload", commonv1.HTTPExtension_POST, "", "", nil, io.MultiReader(bytes.NewReader(big)), -1),
			check: func(t *testing.T, s seen) {
				if s.contentLength != -1 {
					t.Errorf("content length %d, want chunked", s.contentLength)
				}
				if !bytes.Equal(s.body, big) {
					t.Errorf("body differs (%d bytes)", len(s.body))
				}
				if s.header.Get("Dapr-Api-Token") != "" {
					t.Error("token sent without APP_API_TOKEN")
				}
			},
		},
		{
			name:  "no body root",
			start: func(s *httptest.Server) { s.Start() },
			req:   newReq("", commonv1.HTTPExtension_GET, "", "", nil, nil, 0),
			check: func(t *testing.T, s seen) {
				if s.path != "/" || s.method != "GET" || len(s.body) != 0 {
					t.Errorf("got %s %s %q", s.method, s.path, s.body)
				}
			},
		},
		{
			name:  "traceparent from grpc-trace-bin",
			start: func(s *httptest.Server) { s.Start() },
			req: newReq("t", commonv1.HTTPExtension_GET, "", "", headers.Metadata{
				"grpc-trace-bin": lv(binOf("00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01")),
			}, nil, 0),
			check: func(t *testing.T, s seen) {
				if got := s.header.Get("Traceparent"); got != "00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01" {
					t.Errorf("traceparent = %q", got)
				}
			},
		},
		{
			name:     "https",
			protocol: ProtocolHTTPS,
			start:    func(s *httptest.Server) { s.StartTLS() },
			req:      newReq("x", commonv1.HTTPExtension_PUT, "", "text/plain", nil, strings.NewReader("hi"), 2),
			check: func(t *testing.T, s seen) {
				if string(s.body) != "hi" || s.method != "PUT" {
					t.Errorf("got %s %q", s.method, s.body)
				}
			},
		},
		{
			name:     "h2c",
			protocol: ProtocolH2C,
			start: func(s *httptest.Server) {
				p := new(http.Protocols)
				p.SetUnencryptedHTTP2(true)
				s.Config.Protocols = p
				s.Start()
			},
			req: newReq("x", commonv1.HTTPExtension_POST, "", "", nil, strings.NewReader("h2"), -1),
			check: func(t *testing.T, s seen) {
				if s.proto != "HTTP/2.0" || string(s.body) != "h2" {
					t.Errorf("proto %s body %q", s.proto, s.body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ch := fakeApp(t, tt.start, func(w http.ResponseWriter) {
				w.Header().Set("X-Reply", "r")
				w.Header().Set("Content-Type", "application/x-reply")
				w.Header().Set("Connection", "close-me")
				w.Header().Set("Close-Me", "hop")
				w.WriteHeader(http.StatusAccepted)
				_, _ = io.WriteString(w, "reply body")
			})
			host, port := portOf(t, srv)
			ch2, err := NewHTTP(HTTPConfig{Address: host, Port: port, Protocol: tt.protocol, APIToken: tt.token})
			if err != nil {
				t.Fatal(err)
			}
			defer ch2.Close()
			resp, err := ch2.Invoke(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			tt.check(t, <-ch)
			if !resp.IsHTTP() || resp.Message.GetStatus().GetCode() != 202 {
				t.Errorf("status = %d", resp.Message.GetStatus().GetCode())
			}
			if headers.First(resp.Message.GetHeaders(), "x-reply") != "r" {
				t.Errorf("headers = %v", resp.Message.GetHeaders())
			}
			// HTTP/2 has no Connection header, so only HTTP/1 can nominate.
			if _, ok := resp.Message.GetHeaders()["close-me"]; ok && tt.protocol != ProtocolH2C {
				t.Error("connection-nominated header kept")
			}
			if resp.Message.GetMessage().GetContentType() != "application/x-reply" {
				t.Errorf("content type = %q", resp.Message.GetMessage().GetContentType())
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "reply body" {
				t.Errorf("body = %q", b)
			}
		})
	}
}

func binOf(tp string) string {
	b, ok := invoke.TraceBinFromParent(tp)
	if !ok {
		panic("bad traceparent " + tp)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestTraceRoundTrip(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01", true},
		{"00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-0", false},
		{"00-4bf824d1d1a5b6a65c810a7f0fb5400z-98c63871e0a6e7c0-01", false},
		{"", false},
	}
	for _, tt := range tests {
		b, ok := invoke.TraceBinFromParent(tt.in)
		if ok != tt.ok {
			t.Errorf("invoke.TraceBinFromParent(%q) ok = %v", tt.in, ok)
			continue
		}
		if !ok {
			continue
		}
		if got, ok := invoke.TraceParentFromBin(b); !ok || got != tt.in {
			t.Errorf("round trip %q -> %q", tt.in, got)
		}
	}
	if _, ok := invoke.TraceParentFromBin([]byte{1, 2}); ok {
		t.Error("short bin accepted")
	}
}

func TestHTTPInvokeErrors(t *testing.T) {
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ch, err := NewHTTP(HTTPConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.Invoke(context.Background(), newReq("x", commonv1.HTTPExtension_POST, "", "", nil, nil, 0))
	if err == nil || !strings.Contains(err.Error(), "call app at 127.0.0.1:") {
		t.Errorf("want a dial error naming the app, got %v", err)
	}
	// The error reads as http.Client's would (daprd's says the same).
	_, want := ch.Client().Post(fmt.Sprintf("http://127.0.0.1:%d/x", port), "", nil)
	if want == nil || !strings.HasSuffix(err.Error(), ": "+want.Error()) {
		t.Errorf("error %q, want it to end with http.Client's %q", err, want)
	}
	bad := newReq("x", commonv1.HTTPExtension_GET, "", "", nil, nil, 0)
	bad.Message.Message.HttpExtension = nil
	if _, err := ch.Invoke(context.Background(), bad); err == nil {
		t.Error("missing verb accepted")
	}
	// As in daprd the method is an escaped path: a bare "%" cannot be one.
	if _, err := ch.Invoke(context.Background(), newReq("test%stream", commonv1.HTTPExtension_GET, "", "", nil, nil, 0)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("method with a bare %%: err = %v, want InvalidArgument", err)
	}
	for _, cfg := range []HTTPConfig{{Port: 0}, {Port: 1, Protocol: "grpc"}} {
		if _, err := NewHTTP(cfg); err == nil {
			t.Errorf("NewHTTP(%+v) accepted", cfg)
		}
	}
}

func TestLeanFits(t *testing.T) {
	small := bytes.Repeat([]byte("a"), 1024)
	big := bytes.Repeat([]byte("a"), 64<<10+1)
	mk := func(url string, body io.Reader) *http.Request {
		r, err := http.NewRequest(http.MethodPost, url, body)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	stream := mk("http://127.0.0.1:1/x", io.NopCloser(bytes.NewReader(small))) // no GetBody, unknown length
	for _, tt := range []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"no body", mk("http://127.0.0.1:1/x", nil), true},
		{"small in-memory body", mk("http://127.0.0.1:1/x", bytes.NewReader(small)), true},
		{"body over 64 KiB", mk("http://127.0.0.1:1/x", bytes.NewReader(big)), false},
		{"streamed body", stream, false},
		{"https", mk("https://127.0.0.1:1/x", bytes.NewReader(small)), false},
	} {
		if got := leanFits(tt.req); got != tt.want {
			t.Errorf("%s: leanFits = %v, want %v", tt.name, got, tt.want)
		}
	}
	// The requests NewRequest builds: a body in memory, as a bytes.Reader
	// (CallLocal) or an invoke.MemBody (an actor call), can be sent again
	// and goes over h1; a streamed one does not.
	base := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	for _, tt := range []struct {
		name string
		body io.Reader
		want bool
	}{
		{"bytes.Reader", bytes.NewReader(small), true},
		{"invoke.MemBody", invoke.NewMemBody(small), true},
		{"stream", io.NopCloser(bytes.NewReader(small)), false},
	} {
		hreq, err := NewRequest(context.Background(), newReq("m", commonv1.HTTPExtension_PUT, "", "", nil, tt.body, int64(len(small))), base)
		if err != nil {
			t.Fatal(err)
		}
		if got := leanFits(hreq); got != tt.want {
			t.Errorf("NewRequest with a %s body: leanFits = %v, want %v", tt.name, got, tt.want)
		}
		if tt.want {
			_, _ = io.Copy(io.Discard, hreq.Body)
			again, err := hreq.GetBody()
			if b, _ := io.ReadAll(again); err != nil || !bytes.Equal(b, small) {
				t.Errorf("%s: GetBody gave %d bytes (%v)", tt.name, len(b), err)
			}
		}
	}
}

// TestHTTPInvokeWrappedTransport: a wrapper around the channel's transport
// (tracing wraps it) sees every call, small and streamed.
func TestHTTPInvokeWrappedTransport(t *testing.T) {
	srv, ch := fakeApp(t, (*httptest.Server).Start, func(w http.ResponseWriter) { _, _ = io.WriteString(w, "ok") })
	host, port := portOf(t, srv)
	app, err := NewHTTP(HTTPConfig{Address: host, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var seen int
	next := app.Client().Transport
	app.Client().Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen++
		return next.RoundTrip(r)
	})
	for i, body := range [][]byte{[]byte("small"), bytes.Repeat([]byte("b"), 100<<10)} {
		for _, streamed := range []bool{false, true} {
			var rd io.Reader = bytes.NewReader(body)
			n := int64(len(body))
			if streamed {
				rd, n = io.MultiReader(bytes.NewReader(body)), -1
			}
			resp, err := app.Invoke(context.Background(), newReq("m", commonv1.HTTPExtension_POST, "", "text/plain", nil, rd, n))
			if err != nil {
				t.Fatalf("body %d streamed %v: %v", i, streamed, err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if got := <-ch; string(b) != "ok" || !bytes.Equal(got.body, body) {
				t.Fatalf("body %d streamed %v: reply %q, app got %d bytes", i, streamed, b, len(got.body))
			}
		}
	}
	if seen != 4 {
		t.Fatalf("wrapper saw %d calls, want 4", seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHTTPInvokeStaleContentLength(t *testing.T) {
	// The app announces more than it sends: daprd relays what came.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "999")
		_, _ = w.Write([]byte(`"ok"`))
	}))
	defer srv.Close()
	port, _ := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	ch, err := NewHTTP(HTTPConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ch.Invoke(context.Background(), newReq("x", commonv1.HTTPExtension_GET, "", "", nil, nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != `"ok"` {
		t.Errorf("body = %q, %v; want \"ok\" and no error", b, err)
	}
	if _, ok := resp.Message.GetHeaders()["content-length"]; ok {
		t.Error("the app's Content-Length is relayed")
	}
}

// FuzzPlainPath holds NewRequest's shortcut to url.Parse: a path plainPath
// takes parses to a URL with that Path and nothing else.
func FuzzPlainPath(f *testing.F) {
	for _, s := range []string{"/echo", "/a/b:c@d", "/$&+,;=", "/~x._-", "/a%41", "/a b", "/?q", "echo", "/é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainPath(s) {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("plainPath(%q), but url.Parse: %v", s, err)
		}
		if *u != (url.URL{Path: s}) {
			t.Fatalf("plainPath(%q), but url.Parse gives %#v", s, *u)
		}
	})
}
