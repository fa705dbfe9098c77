package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/static"
	"github.com/tandemrun/tandem/invoke/transport"
)

// startHealthProbed runs a sidecar in front of an app whose /healthz answers
// as up says, with probes every 50ms and a blocking shutdown of block.
func startHealthProbed(t *testing.T, up *atomic.Bool, block time.Duration) (*Sidecar, context.CancelFunc, <-chan error) {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	lns, err := Listen(ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	port := app.Listener.Addr().(*netTCPAddr).Port
	a, err := NewApp(AppConfig{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	health := a.CheckHealth(AppHealthCheck{Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, Threshold: 1}, nil)
	res, err := static.New(resolve.Config{Configuration: map[string]any{"apps": map[string]any{
		"a": []any{"127.0.0.1:" + itoa(lns.InternalPort())},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pool := transport.NewPool(transport.Options{})
	client, err := invoke.NewClient(invoke.ClientOptions{Resolver: res, Pool: pool, AppID: "a", Namespace: "default", Local: a.Channel()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Self: Self{AppID: "a"}, Listeners: lns, App: a,
		Invocation:    Invocation{Invoker: client, Resolver: res, Pool: pool},
		BlockShutdown: &block,
	})
	if err != nil {
		t.Fatal(err)
	}
	probeCtx, stopProbes := context.WithCancel(context.Background())
	probesDone := make(chan struct{})
	go func() { defer close(probesDone); _ = health.Run(probeCtx) }()
	t.Cleanup(func() {
		stopProbes()
		<-probesDone
		_ = res.Close()
		_ = pool.Close()
		_ = a.Close()
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	return s, cancel, errc
}

// invokeSelf calls the app through the sidecar and returns the status and
// body.
func invokeSelf(t *testing.T, s *Sidecar) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1.0/invoke/a/method/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAppHealthGatesInvocation: while probes say the app is unhealthy,
// invoking it fails with daprd's "app is not in a healthy state".
func TestAppHealthGatesInvocation(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	s, _, _ := startHealthProbed(t, &up, time.Second)
	eventually(t, "healthy app answers", func() bool { code, _ := invokeSelf(t, s); return code == 200 })
	up.Store(false)
	eventually(t, "unhealthy app refused", func() bool {
		code, body := invokeSelf(t, s)
		return code == 500 && strings.Contains(body, errAppUnhealthy)
	})
	up.Store(true)
	eventually(t, "app answers again", func() bool { code, _ := invokeSelf(t, s); return code == 200 })
}

// TestBlockShutdown: after ctx ends, the APIs keep serving until the block
// period expires or the app reports unhealthy, whichever is first.
func TestBlockShutdown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		block     time.Duration
		unhealthy bool // the app turns unhealthy during the block
	}{
		{"period expires", 700 * time.Millisecond, false},
		{"app turns unhealthy", time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var up atomic.Bool
			up.Store(true)
			s, cancel, errc := startHealthProbed(t, &up, tc.block)
			eventually(t, "healthy app answers", func() bool { code, _ := invokeSelf(t, s); return code == 200 })
			start := time.Now()
			cancel()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-errc:
				t.Fatalf("Run returned during the block: %v", err)
			default:
			}
			if code, _ := invokeSelf(t, s); code != 200 {
				t.Fatalf("invocation during the block: status %d", code)
			}
			if tc.unhealthy {
				up.Store(false)
			}
			select {
			case err := <-errc:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after the block")
			}
			if took := time.Since(start); !tc.unhealthy && took < tc.block {
				t.Fatalf("returned after %s, before the block period %s", took, tc.block)
			}
		})
	}
}
