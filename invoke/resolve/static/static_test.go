package static

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke/resolve"
)

func resolveN(t *testing.T, r *Resolver, app string, n int) string {
	t.Helper()
	var out []string
	for range n {
		a, err := r.Resolve(context.Background(), resolve.Request{AppID: app})
		if err != nil {
			t.Fatalf("Resolve(%s): %v", app, err)
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

func TestInlineMap(t *testing.T) {
	r, err := New(resolve.Config{Configuration: map[string]any{
		"apps": map[string]any{
			"orders": []any{"127.0.0.1:50002", "127.0.0.1:50012"},
			"cart":   "10.0.0.1:50002",
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := resolveN(t, r, "orders", 3); got != "127.0.0.1:50002 127.0.0.1:50012 127.0.0.1:50002" {
		t.Fatalf("orders: %s", got)
	}
	if got := resolveN(t, r, "cart", 2); got != "10.0.0.1:50002 10.0.0.1:50002" {
		t.Fatalf("cart: %s", got)
	}
	_, err = r.Resolve(context.Background(), resolve.Request{AppID: "billing"})
	if !errors.Is(err, resolve.ErrNotFound) || !strings.Contains(err.Error(), `"billing"`) {
		t.Fatalf("unknown app: %v", err)
	}
}

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Explicit mtimes: filesystems with coarse timestamps would hide a
	// quick rewrite.
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestFileAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.yaml")
	t0 := time.Now().Add(-time.Hour)
	writeFile(t, path, "apps:\n  orders: [\"127.0.0.1:1\"]\n", t0)

	r, err := New(resolve.Config{Configuration: map[string]any{
		"file":           path,
		"reloadInterval": "1ms",
		"apps":           map[string]any{"orders": []any{"127.0.0.1:9"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	list, _ := r.List(context.Background(), resolve.Request{AppID: "orders"})
	if fmt.Sprint(list) != "[127.0.0.1:9 127.0.0.1:1]" {
		t.Fatalf("merged list = %v", list)
	}

	// JSON, bare map, new mtime: picked up.
	writeFile(t, path, `{"orders": ["127.0.0.1:2", "127.0.0.1:3"], "cart": ["127.0.0.1:4"]}`, t0.Add(time.Minute))
	time.Sleep(5 * time.Millisecond)
	list, _ = r.List(context.Background(), resolve.Request{AppID: "orders"})
	if fmt.Sprint(list) != "[127.0.0.1:9 127.0.0.1:2 127.0.0.1:3]" {
		t.Fatalf("after reload = %v", list)
	}
	if got := resolveN(t, r, "cart", 1); got != "127.0.0.1:4" {
		t.Fatalf("cart = %s", got)
	}

	// A broken file keeps the last good table.
	writeFile(t, path, "orders: [not-an-address]\n", t0.Add(2*time.Minute))
	time.Sleep(5 * time.Millisecond)
	if got := resolveN(t, r, "cart", 1); got != "127.0.0.1:4" {
		t.Fatalf("after bad file cart = %s", got)
	}
}

func TestReloadIsRateLimited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "apps.yaml")
	t0 := time.Now().Add(-time.Hour)
	writeFile(t, path, "orders: 127.0.0.1:1\n", t0)
	r, err := New(resolve.Config{Configuration: map[string]any{"file": path, "reloadInterval": "1h"}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "orders: 127.0.0.1:2\n", t0.Add(time.Minute))
	if got := resolveN(t, r, "orders", 1); got != "127.0.0.1:1" {
		t.Fatalf("reloaded before the interval: %s", got)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "orders: [1, 2]\n", time.Now())
	tests := []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"empty", map[string]any{}, `"apps"`},
		{"missing file", map[string]any{"file": filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"bad file", map[string]any{"file": bad}, "not a string"},
		{"bad address", map[string]any{"apps": map[string]any{"orders": []any{"localhost"}}}, "host:port"},
		{"apps not a map", map[string]any{"apps": []any{"x"}}, "map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(resolve.Config{Configuration: tt.cfg})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %s", err, tt.want)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
	}{
		{"yaml under apps", "apps:\n  a: [\"h:1\", \"h:2\"]\n", "map[a:[h:1 h:2]]"},
		{"yaml top level", "a:\n  - h:1\n", "map[a:[h:1]]"},
		{"json", `{"apps": {"a": ["h:1"]}}`, "map[a:[h:1]]"},
		{"app named apps", `{"apps": ["h:1"]}`, "map[apps:[h:1]]"},
		{"duplicates dropped", "a: [\"h:1\", \"h:1\"]", "map[a:[h:1]]"},
		{"empty", "", "map[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFile([]byte(tt.in))
			if err != nil || fmt.Sprint(got) != tt.want {
				t.Fatalf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func FuzzParseFile(f *testing.F) {
	for _, s := range []string{"apps:\n  a: [\"h:1\"]\n", "a: h:1", `{"a": ["h:1"]}`, "", "[1]", "a: {b: c}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		apps, err := ParseFile(b)
		if err != nil {
			return
		}
		for app, addrs := range apps {
			if len(addrs) == 0 {
				continue
			}
			for _, a := range addrs {
				if !strings.Contains(a, ":") {
					t.Fatalf("app %q: accepted %q", app, a)
				}
			}
		}
	})
}
