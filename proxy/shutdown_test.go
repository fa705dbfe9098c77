package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/static"
	"github.com/tandemrun/tandem/invoke/transport"
)

// selfSidecar builds sidecar "a" in front of the app on appPort, whose name
// resolution knows only itself; mod adjusts the options.
func selfSidecar(t *testing.T, appPort int, mod func(*Options)) *Sidecar {
	t.Helper()
	lns, err := Listen(ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	app, err := NewApp(AppConfig{Port: appPort})
	if err != nil {
		t.Fatal(err)
	}
	res, err := static.New(resolve.Config{Configuration: map[string]any{"apps": map[string]any{
		"a": []any{"127.0.0.1:" + itoa(lns.InternalPort())},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pool := transport.NewPool(transport.Options{})
	t.Cleanup(func() { _ = res.Close(); _ = pool.Close(); _ = app.Close() })
	o := Options{Self: Self{AppID: "a"}, Listeners: lns, App: app}
	if mod != nil {
		mod(&o)
	}
	client, err := invoke.NewClient(invoke.ClientOptions{Resolver: res, Pool: pool, AppID: "a", Namespace: "default", Local: o.App.Channel()})
	if err != nil {
		t.Fatal(err)
	}
	o.Invocation = Invocation{Invoker: client, Resolver: res, Pool: pool}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRunShutdownOutcomes: Run returns nil after a graceful shutdown,
// ErrGraceExceeded when a request to the app outlives the grace period
// (daprd exits 1 then, and the caller's connection is cut), and
// ErrForcedShutdown at once after ForceShutdown.
func TestRunShutdownOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inFlight  bool // a request to the app is still running at shutdown
		force     bool
		wantErr   error
		wantUnder time.Duration
	}{
		{name: "graceful", wantErr: nil, wantUnder: 2 * time.Second},
		{name: "grace exceeded", inFlight: true, wantErr: ErrGraceExceeded, wantUnder: 3 * time.Second},
		{name: "forced", inFlight: true, force: true, wantErr: ErrForcedShutdown, wantUnder: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/slow" { // the start-up calls (GET /dapr/config)
					w.WriteHeader(http.StatusNotFound)
					return
				}
				close(entered)
				<-release
			}))
			defer app.Close()
			defer close(release) // before app.Close, which waits for the handler
			s := selfSidecar(t, app.Listener.Addr().(*netTCPAddr).Port, func(o *Options) { o.GracefulShutdown = time.Second })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- s.Run(ctx) }()
			callErr := make(chan error, 1)
			if tc.inFlight {
				go func() {
					resp, err := http.Post("http://"+s.HTTPAddr()+"/v1.0/invoke/a/method/slow", "text/plain", nil)
					if err == nil {
						resp.Body.Close()
					}
					callErr <- err
				}()
				select {
				case <-entered:
				case <-time.After(5 * time.Second):
					t.Fatal("the call did not reach the app")
				}
			}
			start := time.Now()
			if tc.force {
				s.ForceShutdown()
			} else {
				cancel()
			}
			select {
			case err := <-errc:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Run: %v, want %v", err, tc.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			if took := time.Since(start); took > tc.wantUnder {
				t.Fatalf("shutdown took %s, want under %s", took, tc.wantUnder)
			}
			if tc.inFlight {
				if err := <-callErr; err == nil {
					t.Fatal("the cut-off call succeeded")
				}
			}
		})
	}
}
