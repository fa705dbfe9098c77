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
