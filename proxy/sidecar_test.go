package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/static"
	"github.com/tandemrun/tandem/invoke/transport"
)

// startPair runs two plaintext sidecars, "a" (no app) and "b" (in front of
// app), that find each other through a static table.
func startPair(t *testing.T, app http.Handler) (*Sidecar, *Sidecar) {
	t.Helper()
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	appPort := srv.Listener.Addr().(*netTCPAddr).Port
	var mu sync.Mutex
	table := map[string]any{}
	newResolver := func(self resolve.Instance) (resolve.Resolver, error) {
		mu.Lock()
		table[self.AppID] = []any{self.Address + ":" + itoa(self.InternalPort)}
		apps := map[string]any{}
		for k, v := range table {
			apps[k] = v
		}
		mu.Unlock()
		return static.New(resolve.Config{Self: self, Configuration: map[string]any{"apps": apps}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func(id string, port int) *Sidecar {
		lns, err := Listen(ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1})
		if err != nil {
			t.Fatal(err)
		}
		app, err := NewApp(AppConfig{Port: port})
		if err != nil {
			t.Fatal(err)
		}
		res, err := newResolver(resolve.Instance{AppID: id, Namespace: "default", Address: "127.0.0.1", InternalPort: lns.InternalPort(), HTTPPort: lns.HTTPPort(), AppPort: port})
		if err != nil {
			t.Fatal(err)
		}
		pool := transport.NewPool(transport.Options{MaxMessageSize: MessageSize(8 << 20)})
		client, err := invoke.NewClient(invoke.ClientOptions{Resolver: res, Pool: pool, AppID: id, Namespace: "default", Local: app.Channel()})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Options{
			Self: Self{AppID: id}, Listeners: lns, App: app,
			Invocation: Invocation{Invoker: client, Resolver: res, Pool: pool},
			APIs:       APIs{MaxRequestBodySize: 8 << 20},
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				t.Errorf("sidecar %s: %v", id, err)
			}
			_ = res.Close()
			_ = pool.Close()
			_ = app.Close()
		}()
		return s
	}
	b := start("b", appPort)
	a := start("a", 0)
	return a, b
}

func TestInvokeBodiesThroughTwoSidecars(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
		_, _ = w.Write(b)
	})
	a, _ := startPair(t, echo)
	time.Sleep(50 * time.Millisecond)
	for _, n := range []int{0, 1, 512, 513, 30000, 65536, 65537, 300000, 1 << 20} {
		payload := make([]byte, n)
		_, _ = rand.Read(payload)
		for _, chunked := range []bool{false, true} {
			var body io.Reader = bytes.NewReader(payload)
			if chunked {
				body = io.MultiReader(body)
			}
			resp, err := http.Post("http://"+a.HTTPAddr()+"/v1.0/invoke/b/method/echo", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, payload) {
				t.Errorf("%d bytes (chunked=%v): status %d, %d bytes back", n, chunked, resp.StatusCode, len(got))
			}
		}
	}
}

type netTCPAddr = net.TCPAddr

func itoa(i int) string { return strconv.Itoa(i) }

// lone builds a sidecar without an app whose name resolution knows no one.
func lone(t *testing.T) (*Sidecar, *Listeners) {
	t.Helper()
	return loneWith(t, ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1}, Self{AppID: "lone"}, APIs{})
}

// loneWith is lone with its own listeners, self and APIs.
func loneWith(t *testing.T, lc ListenConfig, self Self, apis APIs) (*Sidecar, *Listeners) {
	t.Helper()
	lns, err := Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := static.New(resolve.Config{Configuration: map[string]any{"apps": map[string]any{"other": []any{"127.0.0.1:1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	pool := transport.NewPool(transport.Options{})
	t.Cleanup(func() { _ = res.Close(); _ = pool.Close() })
	client, err := invoke.NewClient(invoke.ClientOptions{Resolver: res, Pool: pool, AppID: "lone", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Self: self, Listeners: lns, Invocation: Invocation{Invoker: client, Resolver: res, Pool: pool}, APIs: apis})
	if err != nil {
		t.Fatal(err)
	}
	return s, lns
}

func TestRunStops(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(s *Sidecar, lns *Listeners, cancel context.CancelFunc)
		wantErr string
	}{
		{"context ends", func(_ *Sidecar, _ *Listeners, cancel context.CancelFunc) { cancel() }, ""},
		{"shutdown API", func(s *Sidecar, _ *Listeners, _ context.CancelFunc) {
			resp, err := http.Post("http://"+s.HTTPAddr()+"/v1.0/shutdown", "", nil)
			if err == nil {
				resp.Body.Close()
			}
		}, ""},
		{"a server fails", func(_ *Sidecar, lns *Listeners, _ context.CancelFunc) { _ = lns.GRPC[0].Close() }, "grpc server: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, lns := lone(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			waitHTTP(t, s.HTTPAddr())
			tc.stop(s, lns, cancel)
			select {
			case err := <-done:
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
					t.Fatalf("Run = %v, want %q", err, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if c, err := net.Dial("tcp", s.InternalAddr()); err == nil {
				c.Close()
				t.Error("internal listener still open after Run returned")
			}
		})
	}
}

func waitHTTP(t *testing.T, addr string) {
	t.Helper()
	for range 200 {
		resp, err := http.Get("http://" + addr + "/v1.0/healthz/outbound")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never answered", addr)
}
