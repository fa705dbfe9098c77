package http

import (
	"context"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

// server is a real HTTP server on loopback that records what it gets.
type server struct {
	*httptest.Server
	calls  atomic.Int32
	status atomic.Int32 // answered status; 0: 200
	last   atomic.Pointer[nethttp.Request]
	body   atomic.Pointer[string]
}

func newServer(t *testing.T) *server {
	s := &server{}
	s.Server = httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		s.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		body := string(b)
		s.body.Store(&body)
		s.last.Store(r.Clone(context.Background()))
		w.Header().Set("X-Answer", "yes")
		if st := s.status.Load(); st != 0 {
			w.WriteHeader(int(st))
		}
		_, _ = w.Write([]byte("answer " + r.Method + " " + r.URL.Path))
	}))
	t.Cleanup(s.Close)
	return s
}

func open(t *testing.T, props map[string]string) *Binding {
	t.Helper()
	b := New(nil)
	if err := b.Init(context.Background(), components.Metadata{Name: "h", Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestContract(t *testing.T) {
	s := newServer(t)
	bindingstest.Run(t, bindingstest.Config{
		New: func() bindings.Binding { return New(nil) },
		Metadata: func(*testing.T) components.Metadata {
			return components.Metadata{Name: "h", Properties: map[string]string{"url": s.URL}}
		},
	})
}

func TestInvoke(t *testing.T) {
	s := newServer(t)
	b := open(t, map[string]string{"url": s.URL + "/base/", "securityToken": "tok", "securityTokenHeader": "X-Token"})
	resp, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "create", Data: []byte(`{"a":1}`),
		Metadata: map[string]string{"path": "/items", "X-Custom": "c", "lower": "not a header", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.last.Load()
	if r.Method != "POST" || r.URL.Path != "/base/items" || *s.body.Load() != `{"a":1}` {
		t.Errorf("server got %s %s %q", r.Method, r.URL.Path, *s.body.Load())
	}
	if r.Header.Get("X-Custom") != "c" || r.Header.Get("Lower") != "" || r.Header.Get("X-Token") != "tok" || r.Header.Get("Traceparent") == "" {
		t.Errorf("headers %v", r.Header)
	}
	if r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	if string(resp.Data) != "answer POST /base/items" || resp.Metadata["statusCode"] != "200" || resp.Metadata["X-Answer"] != "yes" {
		t.Errorf("answer %q %v", resp.Data, resp.Metadata)
	}
}

func TestNon2xx(t *testing.T) {
	s := newServer(t)
	s.status.Store(404)
	b := open(t, map[string]string{"url": s.URL})
	_, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "get"})
	if err == nil || bindings.ResponseOf(err) == nil || bindings.ResponseOf(err).Metadata["statusCode"] != "404" {
		t.Fatalf("err = %v: want an error with the 404 answer", err)
	}
	resp, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "get", Metadata: map[string]string{"errorIfNot2XX": "false"}})
	if err != nil || resp.Metadata["statusCode"] != "404" {
		t.Fatalf("errorIfNot2XX=false: %v, %v", resp, err)
	}
}

func TestRetriesWithoutPolicy(t *testing.T) {
	s := newServer(t)
	s.status.Store(503)
	b := open(t, map[string]string{"url": s.URL})
	if _, err := b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "get"}); err == nil {
		t.Fatal("503 succeeded")
	}
	if n := s.calls.Load(); n != retryMax+1 {
		t.Errorf("GET without a policy: %d calls, want %d", n, retryMax+1)
	}
	s.calls.Store(0)
	_, _ = b.Invoke(bindings.WithResiliency(context.Background()), &bindings.InvokeRequest{Operation: "get"})
	if n := s.calls.Load(); n != 1 {
		t.Errorf("GET under a Resiliency policy: %d calls, want 1 (the policy retries)", n)
	}
	s.calls.Store(0)
	_, _ = b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: "post"})
	if n := s.calls.Load(); n != 1 {
		t.Errorf("POST: %d calls, want 1 (not idempotent)", n)
	}
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"url": "http://localhost:8080"}, false},
	{"all", map[string]string{"url": "https://x/y", "responseTimeout": "5s", "maxResponseBodySize": "10Mi", "errorIfNot2XX": "false", "mtlsRenegotiation": "RenegotiateNever"}, false},
	{"no url", map[string]string{}, true},
	{"bad url", map[string]string{"url": "ftp://x"}, true},
	{"bad size", map[string]string{"url": "http://x", "maxResponseBodySize": "lots"}, true},
	{"bad renegotiation", map[string]string{"url": "http://x", "mtlsRenegotiation": "sometimes"}, true},
	{"bad root ca", map[string]string{"url": "http://x", "mtlsRootCA": "/no/such/file"}, false},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(components.Metadata{Name: "h", Properties: c.props})
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if c.name == "all" && (cfg.MaxResponseBody != 10<<20 || cfg.ErrorIfNot2XX || cfg.ResponseTimeout.Seconds() != 5) {
				t.Errorf("config = %+v", cfg)
			}
		})
	}
	if err := New(nil).Init(context.Background(), components.Metadata{Name: "h", Properties: map[string]string{"url": "http://x", "mtlsRootCA": "/no/such/file"}}); !components.IsPermanent(err) {
		t.Errorf("unreadable mtlsRootCA: %v, want a permanent error", err)
	}
}
