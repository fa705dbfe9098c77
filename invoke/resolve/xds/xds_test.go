package xds_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/xds"
	"github.com/tandemrun/tandem/invoke/transport/transporttest"
	xdsserver "github.com/tandemrun/tandem/xds"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// source is an xdsserver.Source whose apps the test sets.
type source struct {
	mu      sync.Mutex
	apps    []xdsserver.App
	changed chan struct{}
}

func newSource(apps ...xdsserver.App) *source {
	return &source{apps: apps, changed: make(chan struct{}, 1)}
}

func (s *source) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s *source) Changed() <-chan struct{}      { return s.changed }
func (s *source) Apps() []xdsserver.App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]xdsserver.App, len(s.apps))
	for i, a := range s.apps {
		a.Endpoints = slices.Clone(a.Endpoints)
		out[i] = a
	}
	return out
}

func (s *source) set(apps ...xdsserver.App) {
	s.mu.Lock()
	s.apps = apps
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func app(id string, ports ...uint32) xdsserver.App {
	a := xdsserver.App{ID: id, Namespace: "default"}
	for _, p := range ports {
		a.Endpoints = append(a.Endpoints, xdsserver.Endpoint{Host: "127.0.0.1", Port: p})
	}
	return a
}

var td = spiffeid.RequireTrustDomainFromString("public")

// serve runs the real xDS server on lis (mTLS with ident, plaintext if
// nil) until the returned stop is called.
func serve(t *testing.T, lis net.Listener, src xdsserver.Source, ident *identity.Source) (stop func()) {
	t.Helper()
	srv, err := xdsserver.New(xdsserver.Options{Source: src, Build: xdsserver.BuildOptions{TrustDomain: td}, Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, ident, td) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var lis net.Listener
	var err error
	// The port of a server just stopped can take a moment to free.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// start builds the resolver and runs it until the test ends.
func start(t *testing.T, cfg resolve.Config) *xds.Resolver {
	t.Helper()
	r, err := xds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = r.Close()
	})
	return r
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func list(r resolve.Lister, appID string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.List(ctx, resolve.Request{AppID: appID})
}

func TestClusterNameIsTheServers(t *testing.T) {
	if got, want := xds.ClusterName("orders", "prod"), xdsserver.ClusterName(xdsserver.App{ID: "orders", Namespace: "prod"}); got != want {
		t.Fatalf("ClusterName = %q, the server names it %q", got, want)
	}
}

// TestPushedOverMTLS: the sidecar authenticates with its SVID, finds an
// app's healthy endpoints, and sees every change pushed (announced to the
// cache in front) without asking again.
func TestPushedOverMTLS(t *testing.T) {
	ca := transporttest.NewCA(t)
	src := newSource(app("orders", 5001, 5002), app("other", 6001))
	lis := listen(t, "127.0.0.1:0")
	serve(t, lis, src, ca.Source(t, "public", "default", "dapr-xds"))
	r := start(t, resolve.Config{
		Self:          resolve.Instance{AppID: "caller", Namespace: "default", Address: "127.0.0.1", InternalPort: 7000},
		Configuration: map[string]any{"server": lis.Addr().String(), "timeout": "2s"},
		Identity:      ca.Source(t, "public", "default", "caller"),
	})
	var mu sync.Mutex
	var changes []resolve.Request
	r.OnChange(func(req resolve.Request) {
		mu.Lock()
		changes = append(changes, req)
		mu.Unlock()
	})
	changed := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(changes)
	}

	got, err := list(r, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:5001", "127.0.0.1:5002"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if addr, err := r.Resolve(context.Background(), resolve.Request{AppID: "orders", Namespace: "default"}); err != nil || addr != "127.0.0.1:5001" {
		t.Fatalf("Resolve = %q, %v", addr, err)
	}
	base := changed()

	// A third sidecar joins, the second turns unhealthy.
	orders := app("orders", 5001, 5002, 5003)
	orders.Endpoints[1].Health = xdsserver.Unhealthy
	src.set(orders, app("other", 6001))
	took := eventually(t, 10*time.Second, "the change pushed", func() bool { return changed() > base })
	got, _ = list(r, "orders")
	if want := []string{"127.0.0.1:5001", "127.0.0.1:5003"}; !slices.Equal(got, want) {
		t.Fatalf("after the push List = %v, want %v", got, want)
	}
	t.Logf("a change reached the resolver %v after the source announced it", took)

	// The app goes away: not found, promptly.
	base = changed()
	src.set(app("other", 6001))
	eventually(t, 10*time.Second, "the removal pushed", func() bool { return changed() > base })
	if _, err := list(r, "orders"); !errors.Is(err, resolve.ErrNotFound) {
		t.Fatalf("List of a removed app: %v, want ErrNotFound", err)
	}

	// An app the server does not know: ErrNotFound after the wait; it is
	// found by push when it appears.
	if _, err := list(r, "later"); !errors.Is(err, resolve.ErrNotFound) || !strings.Contains(err.Error(), "cluster/later.default") {
		t.Fatalf("List of an unknown app: %v, want ErrNotFound naming its cluster", err)
	}
	start := time.Now()
	if _, err := list(r, "later"); !errors.Is(err, resolve.ErrNotFound) || time.Since(start) > time.Second {
		t.Fatalf("second List of an unknown app: %v after %v, want ErrNotFound without waiting out the 2s timeout again", err, time.Since(start))
	}
	src.set(app("other", 6001), app("later", 8001))
	eventually(t, 10*time.Second, "the new app pushed", func() bool {
		got, err := list(r, "later")
		return err == nil && slices.Equal(got, []string{"127.0.0.1:8001"})
	})
}

// TestCachedAndEjection: behind resolve.Cached, a failed address is
// skipped, and a push drops the cached list at once (no TTL wait).
func TestCachedAndEjection(t *testing.T) {
	src := newSource(app("orders", 5001, 5002))
	lis := listen(t, "127.0.0.1:0")
	serve(t, lis, src, nil)
	r := start(t, resolve.Config{Configuration: map[string]any{"server": lis.Addr().String(), "insecure": true}})
	c := resolve.NewCached(r, time.Hour)
	ctx := context.Background()
	req := resolve.Request{AppID: "orders"}
	if _, err := c.Resolve(ctx, req); err != nil {
		t.Fatal(err)
	}
	c.MarkFailed("127.0.0.1:5001")
	for range 4 {
		if addr, err := c.Resolve(ctx, req); err != nil || addr != "127.0.0.1:5002" {
			t.Fatalf("after MarkFailed: %q, %v; want the other instance", addr, err)
		}
	}
	src.set(app("orders", 5003))
	eventually(t, 10*time.Second, "the cache follows the push", func() bool {
		addr, err := c.Resolve(ctx, req)
		return err == nil && addr == "127.0.0.1:5003"
	})
}

// TestServerDown: a server that is not there fails lookups at once with
// an error naming it; once it is up the resolver connects by itself; when
// it goes down again the last endpoints keep answering, and a server back
// with changes pushes them.
func TestServerDown(t *testing.T) {
	lis := listen(t, "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close()
	r := start(t, resolve.Config{Configuration: map[string]any{"server": addr, "insecure": "true", "timeout": "2s"}})

	// Wait for the first failed attempt, then a lookup fails at once.
	var err error
	eventually(t, 5*time.Second, "a clear error while the server is down", func() bool {
		s := time.Now()
		_, err = list(r, "orders")
		return err != nil && !errors.Is(err, resolve.ErrNotFound) && time.Since(s) < 100*time.Millisecond
	})
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "reconnecting") {
		t.Fatalf("error while down: %v; want it to name the server and say it reconnects", err)
	}

	src := newSource(app("orders", 5001))
	stop := serve(t, listen(t, addr), src, nil)
	eventually(t, 10*time.Second, "found once the server is up", func() bool {
		got, err := list(r, "orders")
		return err == nil && slices.Equal(got, []string{"127.0.0.1:5001"})
	})

	stop()
	for range 3 {
		if got, err := list(r, "orders"); err != nil || !slices.Equal(got, []string{"127.0.0.1:5001"}) {
			t.Fatalf("while the server is down: %v, %v; want the last endpoints", got, err)
		}
	}

	src2 := newSource(app("orders", 5002))
	serve(t, listen(t, addr), src2, nil)
	eventually(t, 10*time.Second, "the change made while down arrives after reconnecting", func() bool {
		got, err := list(r, "orders")
		return err == nil && slices.Equal(got, []string{"127.0.0.1:5002"})
	})
}

// TestServerIdentity: by default only the control plane's xDS identities
// are accepted; serverID names another.
func TestServerIdentity(t *testing.T) {
	ca := transporttest.NewCA(t)
	src := newSource(app("orders", 5001))
	lis := listen(t, "127.0.0.1:0")
	serve(t, lis, src, ca.Source(t, "public", "default", "impostor"))
	caller := ca.Source(t, "public", "default", "caller")

	r := start(t, resolve.Config{Configuration: map[string]any{"server": lis.Addr().String()}, Identity: caller})
	var err error
	eventually(t, 5*time.Second, "the impostor refused", func() bool {
		_, err = list(r, "orders")
		return err != nil && strings.Contains(err.Error(), "not an xDS server")
	})

	ok := start(t, resolve.Config{Configuration: map[string]any{
		"server": lis.Addr().String(), "serverID": "spiffe://public/ns/default/impostor",
	}, Identity: caller})
	if got, err := list(ok, "orders"); err != nil || !slices.Equal(got, []string{"127.0.0.1:5001"}) {
		t.Fatalf("with serverID: %v, %v", got, err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		id   bool
		want string
	}{
		{"no server", map[string]any{}, true, `"server" is required`},
		{"no port", map[string]any{"server": "localhost"}, true, "not host:port"},
		{"no identity", map[string]any{"server": "127.0.0.1:1"}, false, "insecure: true"},
		{"bad server ID", map[string]any{"server": "127.0.0.1:1", "serverID": "dapr-xds"}, true, `"serverID"`},
		{"bad timeout", map[string]any{"server": "127.0.0.1:1", "timeout": "soon"}, true, `"timeout"`},
		{"zero timeout", map[string]any{"server": "127.0.0.1:1", "timeout": "0s"}, true, "positive"},
		{"bad insecure", map[string]any{"server": "127.0.0.1:1", "insecure": "maybe"}, true, `"insecure"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := resolve.Config{Configuration: tc.cfg}
			if tc.id {
				cfg.Identity = identity.NewSource()
			}
			r, err := xds.New(cfg)
			if err == nil {
				_ = r.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %s", err, tc.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	o, err := xds.ParseOptions(map[string]any{"Server": "xds:15010", "serverID": "spiffe://td/ns/x/dapr-xds", "insecure": "false", "timeout": 3})
	if err != nil {
		t.Fatal(err)
	}
	if o.Server != "xds:15010" || o.ServerID.String() != "spiffe://td/ns/x/dapr-xds" || o.Insecure || o.Timeout != 3*time.Second {
		t.Fatalf("ParseOptions = %+v", o)
	}
	if o, _ := xds.ParseOptions(map[string]any{"server": "h:1"}); o.Timeout != xds.DefaultTimeout || o.UnsubscribeAfter != xds.DefaultUnsubscribeAfter {
		t.Fatalf("defaults: timeout %v, unsubscribeAfter %v", o.Timeout, o.UnsubscribeAfter)
	}
	if o, err := xds.ParseOptions(map[string]any{"server": "h:1", "unsubscribeAfter": "0"}); err != nil || o.UnsubscribeAfter != 0 {
		t.Fatalf("unsubscribeAfter 0: %+v, %v", o, err)
	}
	if _, err := xds.ParseOptions(map[string]any{"server": "h:1", "unsubscribeAfter": "-1s"}); err == nil || !strings.Contains(err.Error(), "unsubscribeAfter") {
		t.Fatalf("negative unsubscribeAfter: %v", err)
	}
}

func FuzzParseOptions(f *testing.F) {
	for _, s := range [][4]string{
		{"127.0.0.1:50061", "", "", ""},
		{"xds:15010", "spiffe://public/ns/default/dapr-xds", "true", "2s"},
		{"[::1]:1", "spiffe://", "1", "0.5"},
		{"", "x", "maybe", "-1s"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, server, id, insec, timeout string) {
		o, err := xds.ParseOptions(map[string]any{"server": server, "serverID": id, "insecure": insec, "timeout": timeout})
		if err != nil {
			return
		}
		if _, _, err := net.SplitHostPort(o.Server); err != nil || o.Timeout <= 0 {
			t.Fatalf("accepted %+v", o)
		}
	})
}

// TestUnusedAppsAreUnsubscribed: an app not looked up for unsubscribeAfter
// stops receiving pushes (and the cache in front is told to forget it),
// while an app in use keeps receiving them; the next lookup of the dropped
// app subscribes again and gets its current endpoints.
func TestUnusedAppsAreUnsubscribed(t *testing.T) {
	src := newSource(app("orders", 5001), app("other", 6001))
	lis := listen(t, "127.0.0.1:0")
	serve(t, lis, src, nil)
	r := start(t, resolve.Config{Configuration: map[string]any{
		"server": lis.Addr().String(), "insecure": true, "unsubscribeAfter": "300ms",
	}})
	var mu sync.Mutex
	changes := map[string]int{}
	r.OnChange(func(req resolve.Request) {
		mu.Lock()
		changes[req.AppID]++
		mu.Unlock()
	})
	count := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return changes[id]
	}
	for _, id := range []string{"orders", "other"} {
		if _, err := list(r, id); err != nil {
			t.Fatal(err)
		}
	}
	// Keep "other" in use; leave "orders" alone until it is dropped (the
	// drop is announced to the cache in front).
	ordersFirst := count("orders")
	stop := make(chan struct{})
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				_, _ = list(r, "other")
			}
		}
	}()
	defer func() { close(stop); <-kept }()
	eventually(t, 3*time.Second, "orders dropped after 300 ms unused", func() bool { return count("orders") > ordersFirst })
	ordersBefore, otherBefore := count("orders"), count("other")

	src.set(app("orders", 5002), app("other", 6002))
	eventually(t, 10*time.Second, "the change of the app in use pushed", func() bool { return count("other") > otherBefore })
	time.Sleep(200 * time.Millisecond)
	if got := count("orders"); got != ordersBefore {
		t.Fatalf("orders changed %d times after it was unsubscribed from; want no push", got-ordersBefore)
	}
	got, err := list(r, "orders")
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:5002"}) {
		t.Fatalf("lookup after the drop: %v, %v; want the current endpoint 127.0.0.1:5002", got, err)
	}
}
