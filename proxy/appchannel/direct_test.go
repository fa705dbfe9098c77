package appchannel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	"golang.org/x/net/http/httpguts"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/headers"
)

// wireApp is an app that reads requests as net/http's server parses them
// and hands each over, answering "ok".
type wireApp struct {
	ln   net.Listener
	reqs chan *wireSeen
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

// wireSeen is one request as the app parsed it.
type wireSeen struct {
	method, uri, host string
	header            http.Header
	length            int64
	body              []byte
}

func newWireApp(t testing.TB) *wireApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &wireApp{ln: ln, reqs: make(chan *wireSeen, 1)}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, c)
			a.mu.Unlock()
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(r.Body)
					a.reqs <- &wireSeen{method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header, length: r.ContentLength, body: b}
					answer := "HTTP/1.1 200 OK\r\nX-Reply: yes\r\nContent-Length: 2\r\n\r\nok"
					if r.Method == http.MethodHead {
						answer = strings.TrimSuffix(answer, "ok")
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		a.mu.Lock()
		for _, c := range a.conns {
			_ = c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

func (a *wireApp) port() int { return a.ln.Addr().(*net.TCPAddr).Port }

// sorted returns h with each header's values sorted (metadata entries that
// merge into one header come in map order).
func sorted(h http.Header) http.Header {
	out := http.Header{}
	for k, vv := range h {
		out[k] = slices.Sorted(slices.Values(vv))
	}
	return out
}

// TestDirectWritesWhatNewRequestWould sends each call through a channel that
// writes it straight from its metadata and through one whose transport is
// wrapped (so NewRequest builds an http.Request for h1 to write): the app
// must see the same request, header for header, and the cases the direct
// writer declines must be declined.
func TestDirectWritesWhatNewRequestWould(t *testing.T) {
	app := newWireApp(t)
	traceBin := base64.StdEncoding.EncodeToString([]byte{0, 0, 0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
		1, 0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7, 2, 1})
	body := []byte("hello, app")
	for _, tt := range []struct {
		name   string
		token  string
		req    func() *invoke.Request
		direct bool
	}{
		{"post with metadata", "", func() *invoke.Request {
			return newReq("orders/new", commonv1.HTTPExtension_POST, "a=1&b=%20", "application/json", headers.Metadata{
				"user-agent": lv("sdk/1.0"), "dapr-caller-app-id": lv("caller"), "x-multi": lv("one", " two "),
				"traceparent": lv("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), "destination-app-id": lv("callee"),
				"content-length": lv("10"), "content-type": lv("text/ignored"), "grpc-timeout": lv("1S"), ":authority": lv("x:1"),
				"x-data-bin": lv("AAE="), "keep-alive": lv("timeout=5"), "host": lv("elsewhere"), "x-empty": lv(),
				"dapr-api-token": lv("from-caller"), "tracestate": lv("k=v"),
			}, invoke.NewMemBody(body), int64(len(body)))
		}, true},
		{"get without metadata", "", func() *invoke.Request {
			return newReq("/health/../ready", commonv1.HTTPExtension_GET, "", "", nil, nil, 0)
		}, true},
		{"trace from grpc-trace-bin", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_PUT, "", "", headers.Metadata{"traceparent": lv(""), "grpc-trace-bin": lv(traceBin)}, nil, 0)
		}, true},
		{"empty user agent", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_DELETE, "", "", headers.Metadata{"user-agent": lv("", "second")}, bytes.NewReader(body), 0)
		}, true},
		{"api token replaces the caller's", "s3cret", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_PATCH, "", "text/plain", headers.Metadata{"dapr-api-token": lv("from-caller")}, bytes.NewReader(body), int64(len(body)))
		}, true},
		{"head", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_HEAD, "q", "", nil, nil, 0)
		}, true},
		{"upper-case metadata name", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_POST, "", "", headers.Metadata{"X-Upper": lv("1"), "x-upper": lv("2")}, nil, 0)
		}, false},
		{"connection nominates a header", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_POST, "", "", headers.Metadata{"connection": lv("x-hop"), "x-hop": lv("1"), "x-keep": lv("2")}, nil, 0)
		}, false},
		{"escaped method", "", func() *invoke.Request {
			return newReq("caf%C3%A9/%41", commonv1.HTTPExtension_GET, "", "", nil, nil, 0)
		}, false},
		{"streamed body", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_POST, "", "", nil, io.MultiReader(bytes.NewReader(body)), int64(len(body)))
		}, false},
		{"value with a line break", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_GET, "", "", headers.Metadata{"x-a": lv("1\r\nX-Injected: 2")}, nil, 0)
		}, false},
		{"query with a fragment mark", "", func() *invoke.Request {
			return newReq("m", commonv1.HTTPExtension_GET, "a=b#c", "", nil, nil, 0)
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if d := (&HTTP{host: "h"}).newDirect(tt.req()); (d != nil) != tt.direct {
				t.Fatalf("written directly: %v, want %v", d != nil, tt.direct)
			}
			compareWrites(t, app, tt.token, tt.req)
		})
	}
}

// compareWrites sends the request req makes through a channel that writes
// directly when it can and through one that builds an http.Request, and
// fails unless the app saw the same request from both.
func compareWrites(t *testing.T, app *wireApp, token string, req func() *invoke.Request) {
	t.Helper()
	{
		{
			direct, err := NewHTTP(HTTPConfig{Port: app.port(), APIToken: token})
			if err != nil {
				t.Fatal(err)
			}
			defer direct.Close()
			viaRequest, err := NewHTTP(HTTPConfig{Port: app.port(), APIToken: token})
			if err != nil {
				t.Fatal(err)
			}
			defer viaRequest.Close()
			viaRequest.WrapTransport(func(rt http.RoundTripper) http.RoundTripper { return rt }, nil)
			if !direct.direct(false) || viaRequest.direct(false) {
				t.Fatal("the unwrapped channel must write directly, the wrapped one not")
			}
			var got [2]*wireSeen
			for i, ch := range []*HTTP{direct, viaRequest} {
				r := req()
				resp, err := ch.Invoke(context.Background(), r)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if r.Message.GetMessage().GetHttpExtension().GetVerb() == commonv1.HTTPExtension_HEAD {
					if len(b) != 0 {
						t.Fatalf("answer %q", b)
					}
				} else if string(b) != "ok" || headers.First(resp.Message.GetHeaders(), "x-reply") != "yes" {
					t.Fatalf("answer %q, headers %v", b, resp.Message.GetHeaders())
				}
				got[i] = <-app.reqs
			}
			d, r := got[0], got[1]
			if d.method != r.method || d.uri != r.uri || d.host != r.host || d.length != r.length || !bytes.Equal(d.body, r.body) {
				t.Fatalf("direct %s %s host %s length %d body %q; via http.Request %s %s host %s length %d body %q",
					d.method, d.uri, d.host, d.length, d.body, r.method, r.uri, r.host, r.length, r.body)
			}
			if dh, rh := sorted(d.header), sorted(r.header); fmt.Sprint(dh) != fmt.Sprint(rh) {
				t.Fatalf("headers differ:\ndirect          %v\nvia http.Request %v", dh, rh)
			}
		}
	}
}

// FuzzDirectWrite: for any method, query and two metadata entries that
// make a request both ways can send, the app sees the same request.
func FuzzDirectWrite(f *testing.F) {
	f.Add("orders/1", "a=1", "x-a", "v", "user-agent", "ua", "")
	f.Add("m", "", "traceparent", "", "grpc-trace-bin", "AAE=", "tok")
	f.Add("a/../b", "q", "grpc-status", "0", ":authority", "h", "")
	f.Add("m", "", "dapr-api-token", " t ", "host", "x", "tok")
	app := newWireApp(f)
	f.Fuzz(func(t *testing.T, method, query, k1, v1, k2, v2, token string) {
		md := headers.Metadata{k1: lv(v1), k2: lv(v2)}
		req := func() *invoke.Request {
			return newReq(method, commonv1.HTTPExtension_POST, query, "", md, invoke.NewMemBody([]byte("b")), 1)
		}
		if (&HTTP{host: "h"}).newDirect(req()) == nil {
			return // the direct writer declined: both ways are NewRequest's
		}
		if !httpguts.ValidHeaderFieldValue(token) {
			return // APP_API_TOKEN is a header value
		}
		compareWrites(t, app, token, req)
	})
}

// TestDirectCallsAreRecorded: with a wrapper and a recorder, a direct call
// is reported to the recorder and not to the wrapper; without a recorder,
// the wrapper sees it.
func TestDirectCallsAreRecorded(t *testing.T) {
	app := newWireApp(t)
	for _, withRecorder := range []bool{true, false} {
		ch, err := NewHTTP(HTTPConfig{Port: app.port()})
		if err != nil {
			t.Fatal(err)
		}
		var wrapped int
		type call struct {
			method, path   string
			sent, received int64
			status         int
			err            error
		}
		var recorded []call
		var rec CallRecorder
		if withRecorder {
			rec = func(method, path string, sent int64, status int, received int64, err error, elapsed time.Duration) {
				if elapsed <= 0 {
					t.Errorf("elapsed %v", elapsed)
				}
				recorded = append(recorded, call{method, path, sent, received, status, err})
			}
		}
		ch.WrapTransport(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) { wrapped++; return rt.RoundTrip(r) })
		}, rec)
		resp, err := ch.Invoke(context.Background(), newReq("a/b", commonv1.HTTPExtension_POST, "x=1", "", nil, invoke.NewMemBody([]byte("12345")), 5))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		<-app.reqs
		want := []call{{"POST", "/a/b", 5, 2, 200, nil}}
		if !withRecorder {
			want = nil
		}
		if fmt.Sprint(recorded) != fmt.Sprint(want) || (wrapped == 1) == withRecorder {
			t.Fatalf("recorder %v: recorded %v (want %v), wrapper saw %d calls", withRecorder, recorded, want, wrapped)
		}
		_ = ch.Close()
	}
}

// TestDirectCallError: a direct call to an app that is not there fails as
// one through net/http's client would, with the URL in the message.
func TestDirectCallError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	ch, err := NewHTTP(HTTPConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var calls []error
	ch.WrapTransport(func(rt http.RoundTripper) http.RoundTripper { return rt }, func(_, _ string, _ int64, status int, _ int64, err error, _ time.Duration) {
		if status != 0 {
			t.Errorf("status %d for a failed call", status)
		}
		calls = append(calls, err)
	})
	_, err = ch.Invoke(context.Background(), newReq("m", commonv1.HTTPExtension_POST, "q=1", "", nil, nil, 0))
	want := fmt.Sprintf(`call app at 127.0.0.1:%d: Post "http://127.0.0.1:%d/m?q=1": `, port, port)
	if err == nil || !strings.HasPrefix(err.Error(), want) || len(calls) != 1 || calls[0] == nil {
		t.Fatalf("error %v (want it to begin %q), recorded %v", err, want, calls)
	}
	var ne *net.OpError
	if !errors.As(err, &ne) {
		t.Fatalf("error %v does not hold the dial error", err)
	}
}
