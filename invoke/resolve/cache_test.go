package resolve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeLister serves a settable instance list and counts List calls.
type fakeLister struct {
	mu    sync.Mutex
	addrs map[string][]string
	err   error
	calls int
}

func (f *fakeLister) set(app string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addrs == nil {
		f.addrs = map[string][]string{}
	}
	f.addrs[app] = addrs
}

func (f *fakeLister) List(_ context.Context, req Request) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	a := f.addrs[req.AppID]
	if len(a) == 0 {
		return nil, fmt.Errorf("app %q: %w", req.AppID, ErrNotFound)
	}
	return a, nil
}

func (f *fakeLister) Resolve(ctx context.Context, req Request) (string, error) {
	a, err := f.List(ctx, req)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

func (f *fakeLister) Close() error { return nil }

func (f *fakeLister) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func resolveN(t *testing.T, c *Cached, app string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		a, err := c.Resolve(context.Background(), Request{AppID: app})
		if err != nil {
			t.Fatalf("Resolve(%s): %v", app, err)
		}
		out = append(out, a)
	}
	return out
}

func TestCachedRoundRobin(t *testing.T) {
	f := &fakeLister{}
	f.set("orders", "a:1", "b:1", "c:1")
	c := NewCached(f, time.Minute)
	got := fmt.Sprint(resolveN(t, c, "orders", 6))
	if got != "[a:1 b:1 c:1 a:1 b:1 c:1]" {
		t.Fatalf("got %s", got)
	}
	if f.callCount() != 1 {
		t.Fatalf("List called %d times, want 1 (cached)", f.callCount())
	}
}

func TestCachedTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeLister{}
		f.set("orders", "a:1")
		c := NewCached(f, 2*time.Second)
		resolveN(t, c, "orders", 3)

		f.set("orders", "b:1")
		time.Sleep(1500 * time.Millisecond)
		if got := resolveN(t, c, "orders", 1)[0]; got != "a:1" {
			t.Fatalf("within TTL got %s, want cached a:1", got)
		}
		time.Sleep(time.Second)
		if got := resolveN(t, c, "orders", 1)[0]; got != "b:1" {
			t.Fatalf("after TTL got %s, want b:1", got)
		}
		if f.callCount() != 2 {
			t.Fatalf("List called %d times, want 2", f.callCount())
		}
	})
}

func TestCachedMarkFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeLister{}
		f.set("orders", "a:1", "b:1", "c:1")
		c := NewCached(f, 2*time.Second)
		var _ FailureMarker = c

		resolveN(t, c, "orders", 1)
		c.MarkFailed("b:1")
		for _, a := range resolveN(t, c, "orders", 6) {
			if a == "b:1" {
				t.Fatal("failed address returned before refresh")
			}
		}
		// Refresh forgets failures.
		time.Sleep(3 * time.Second)
		seen := map[string]bool{}
		for _, a := range resolveN(t, c, "orders", 3) {
			seen[a] = true
		}
		if !seen["b:1"] {
			t.Fatalf("b:1 not back after refresh: %v", seen)
		}
	})
}

func TestCachedAllFailedRefreshes(t *testing.T) {
	f := &fakeLister{}
	f.set("orders", "a:1")
	c := NewCached(f, time.Hour)
	resolveN(t, c, "orders", 1)
	c.MarkFailed("a:1")
	f.set("orders", "b:1") // the app moved
	if got := resolveN(t, c, "orders", 1)[0]; got != "b:1" {
		t.Fatalf("got %s, want refreshed b:1", got)
	}
	// The single instance failed again and nothing else exists: still try it.
	c.MarkFailed("b:1")
	if got := resolveN(t, c, "orders", 1)[0]; got != "b:1" {
		t.Fatalf("got %s, want b:1", got)
	}
}

func TestCachedErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeLister{}
		c := NewCached(f, time.Second)
		ctx := context.Background()

		if _, err := c.Resolve(ctx, Request{AppID: "none"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		// Not found is not cached: a sidecar that just started is found.
		f.set("none", "n:1")
		if got, err := c.Resolve(ctx, Request{AppID: "none"}); err != nil || got != "n:1" {
			t.Fatalf("got %q, %v", got, err)
		}

		// A backend hiccup keeps serving the last list.
		f.mu.Lock()
		f.err = errors.New("database is locked")
		f.mu.Unlock()
		time.Sleep(2 * time.Second)
		if got, err := c.Resolve(ctx, Request{AppID: "none"}); err != nil || got != "n:1" {
			t.Fatalf("stale on error: got %q, %v", got, err)
		}
		// ... but not for an app never seen.
		if _, err := c.Resolve(ctx, Request{AppID: "other"}); err == nil {
			t.Fatal("want the backend error")
		}
		// The app disappeared: not found, even with a cached list.
		f.mu.Lock()
		f.err = nil
		f.mu.Unlock()
		f.set("none")
		if _, err := c.Resolve(ctx, Request{AppID: "none"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestCachedNamespacesAreSeparate(t *testing.T) {
	f := &nsLister{}
	c := NewCached(f, time.Minute)
	a, _ := c.Resolve(context.Background(), Request{AppID: "orders", Namespace: "x"})
	b, _ := c.Resolve(context.Background(), Request{AppID: "orders", Namespace: "y"})
	if a != "x:1" || b != "y:1" {
		t.Fatalf("got %s, %s", a, b)
	}
}

type nsLister struct{ fakeLister }

func (n *nsLister) List(_ context.Context, req Request) ([]string, error) {
	return []string{req.Namespace + ":1"}, nil
}

// plain is a Resolver without List.
type plain struct{ n int }

func (p *plain) Resolve(context.Context, Request) (string, error) {
	p.n++
	return fmt.Sprintf("p:%d", p.n), nil
}
func (p *plain) Close() error { return nil }

func TestCachedPassesThroughWithoutLister(t *testing.T) {
	p := &plain{}
	c := NewCached(p, time.Minute)
	if got := fmt.Sprint(resolveN(t, c, "x", 2)); got != "[p:1 p:2]" {
		t.Fatalf("got %s", got)
	}
}

func TestCachedConcurrent(t *testing.T) {
	f := &fakeLister{}
	f.set("orders", "a:1", "b:1")
	c := NewCached(f, time.Millisecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if _, err := c.Resolve(context.Background(), Request{AppID: "orders"}); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					c.MarkFailed("a:1")
				}
			}
		}()
	}
	wg.Wait()
}

// notifyingLister is a fakeLister that pushes changes (Notifier).
type notifyingLister struct {
	fakeLister
	changed func(Request)
}

func (n *notifyingLister) OnChange(fn func(Request)) { n.changed = fn }

// TestCachedNotifier: a pushed change drops the cached list at once, for
// requests made with the namespace or without one, and only for that app.
func TestCachedNotifier(t *testing.T) {
	n := &notifyingLister{}
	n.set("orders", "a:1")
	n.set("ledger", "l:1")
	c := NewCached(n, time.Hour)
	if n.changed == nil {
		t.Fatal("NewCached did not subscribe to the Notifier")
	}
	ctx := context.Background()
	resolveN(t, c, "orders", 1)
	if _, err := c.Resolve(ctx, Request{AppID: "orders", Namespace: "shop"}); err != nil {
		t.Fatal(err)
	}
	resolveN(t, c, "ledger", 1)
	calls := n.callCount()

	n.set("orders", "b:1")
	n.changed(Request{AppID: "orders", Namespace: "shop"})
	if got := resolveN(t, c, "orders", 1)[0]; got != "b:1" {
		t.Fatalf("after the change got %s, want b:1 (no namespace)", got)
	}
	if got, _ := c.Resolve(ctx, Request{AppID: "orders", Namespace: "shop"}); got != "b:1" {
		t.Fatalf("after the change got %s, want b:1 (namespace shop)", got)
	}
	resolveN(t, c, "ledger", 1)
	if got := n.callCount() - calls; got != 2 {
		t.Fatalf("List called %d times after the change, want 2 (orders twice, ledger still cached)", got)
	}
}
