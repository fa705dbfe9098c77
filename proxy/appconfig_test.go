package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/static"
	"github.com/tandemrun/tandem/invoke/transport"
)

// configApp is an app that records its GET /dapr/config calls and answers
// /healthz as up says.
type configApp struct {
	up    atomic.Bool
	mu    sync.Mutex
	calls []string // the Dapr-App-Id of each GET /dapr/config
	// probed counts health probes.
	probed atomic.Int64
}

func (c *configApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		c.probed.Add(1)
		if !c.up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	case "/dapr/config":
		c.mu.Lock()
		c.calls = append(c.calls, r.Method+" "+r.Header.Get("Dapr-App-Id"))
		c.mu.Unlock()
		_, _ = w.Write([]byte(`{}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (c *configApp) configCalls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// runConfigApp runs a sidecar for app "a" in front of app, with health
// probes when probes is set.
func runConfigApp(t *testing.T, app *configApp, probes, skip bool) *Sidecar {
	t.Helper()
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	lns, err := Listen(ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewApp(AppConfig{Port: srv.Listener.Addr().(*netTCPAddr).Port})
	if err != nil {
		t.Fatal(err)
	}
	probeCtx, stopProbes := context.WithCancel(context.Background())
	probesDone := make(chan struct{})
	if probes {
		health := a.CheckHealth(AppHealthCheck{Interval: 20 * time.Millisecond, Timeout: time.Second, Threshold: 1}, nil)
		go func() { defer close(probesDone); _ = health.Run(probeCtx) }()
	} else {
		close(probesDone)
	}
	res, err := static.New(resolve.Config{Configuration: map[string]any{"apps": map[string]any{"a": []any{"127.0.0.1:1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	pool := transport.NewPool(transport.Options{})
	client, err := invoke.NewClient(invoke.ClientOptions{Resolver: res, Pool: pool, AppID: "a", Namespace: "default", Local: a.Channel()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Self: Self{AppID: "a"}, Listeners: lns, App: a, SkipAppConfig: skip,
		Invocation: Invocation{Invoker: client, Resolver: res, Pool: pool},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-errc
		stopProbes()
		<-probesDone
		_ = res.Close()
		_ = pool.Close()
		_ = a.Close()
	})
	return s
}

// TestAppConfigReadOnceWhenHealthy: with health probes, GET /dapr/config is
// made once the app is first healthy, not before, with Dapr-App-Id, and not
// again when the app turns unhealthy and healthy again (daprd's
// slowappstartup case).
func TestAppConfigReadOnceWhenHealthy(t *testing.T) {
	app := &configApp{}
	runConfigApp(t, app, true, false)
	eventually(t, "app probed while unhealthy", func() bool { return app.probed.Load() >= 3 })
	if calls := app.configCalls(); len(calls) != 0 {
		t.Fatalf("/dapr/config called before the app was healthy: %v", calls)
	}
	app.up.Store(true)
	eventually(t, "/dapr/config called", func() bool { return len(app.configCalls()) > 0 })
	app.up.Store(false)
	n := app.probed.Load()
	eventually(t, "probes go on", func() bool { return app.probed.Load() >= n+3 })
	app.up.Store(true)
	n = app.probed.Load()
	eventually(t, "probes go on", func() bool { return app.probed.Load() >= n+3 })
	if calls := app.configCalls(); len(calls) != 1 || calls[0] != "GET a" {
		t.Fatalf("/dapr/config calls = %q, want one GET with Dapr-App-Id a", calls)
	}
}

// TestAppConfigReadAtStart: without health probes, the sidecar reads
// /dapr/config once the app listens, before it is ready; with
// SkipAppConfig it does not.
func TestAppConfigReadAtStart(t *testing.T) {
	for _, skip := range []bool{false, true} {
		app := &configApp{}
		s := runConfigApp(t, app, false, skip)
		if !skip {
			eventually(t, "/dapr/config called", func() bool { return len(app.configCalls()) > 0 })
		}
		eventually(t, "sidecar ready", s.ready)
		want := 1
		if skip {
			want = 0
		}
		if calls := app.configCalls(); len(calls) != want || (want == 1 && calls[0] != "GET a") {
			t.Fatalf("skip=%v: /dapr/config calls = %q, want %d GET with Dapr-App-Id a", skip, calls, want)
		}
	}
}
