package resolvers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/kubernetes"
	"github.com/tandemrun/tandem/invoke/resolve/mdns"
	"github.com/tandemrun/tandem/invoke/resolve/sqlite"
	"github.com/tandemrun/tandem/invoke/resolve/static"
)

func TestNew(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "nr.db")
	tests := []struct {
		name, component, fallback string
		cfg                       map[string]any
		wantType                  string
		wantErr                   string
	}{
		{name: "sqlite", component: "sqlite", cfg: map[string]any{"connectionString": dbFile}, wantType: "sqlite"},
		{name: "static", component: "static", cfg: map[string]any{"apps": map[string]any{"a": "h:1"}}, wantType: "static"},
		{name: "mdns", component: "mdns", wantType: "mdns"},
		{name: "kubernetes", component: "kubernetes", cfg: map[string]any{"watchEndpointSlices": false}, wantType: "kubernetes"},
		{name: "case and spaces", component: " SQLite ", cfg: map[string]any{"connectionString": dbFile}, wantType: "sqlite"},
		{name: "empty uses Dapr's default", component: "", wantType: "mdns"},
		{name: "empty uses caller's default", component: "", fallback: "static", cfg: map[string]any{"apps": map[string]any{"a": "h:1"}}, wantType: "static"},
		{name: "unknown", component: "consul", wantErr: "use one of kubernetes, mdns, sqlite, static"},
		{name: "backend error names component", component: "sqlite", cfg: map[string]any{}, wantErr: `name resolution "sqlite"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				r   resolve.Resolver
				err error
			)
			cfg := resolve.Config{Configuration: tt.cfg}
			if tt.fallback != "" {
				r, err = NewWithDefault(tt.component, tt.fallback, cfg)
			} else {
				r, err = New(tt.component, cfg)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got string
			switch r.(type) {
			case *sqlite.Resolver:
				got = "sqlite"
			case *static.Resolver:
				got = "static"
			case *kubernetes.Resolver:
				got = "kubernetes"
			case *mdns.Resolver:
				got = "mdns"
			}
			if got != tt.wantType {
				t.Fatalf("got %T, want %s", r, tt.wantType)
			}
			if _, ok := r.(resolve.Lister); !ok {
				t.Fatalf("%T does not implement resolve.Lister", r)
			}
		})
	}
}

// The cache works over every backend through Lister.
func TestCachedOverStatic(t *testing.T) {
	r, err := New("static", resolve.Config{Configuration: map[string]any{"apps": map[string]any{"a": []any{"h:1", "h:2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := resolve.NewCached(r, 0)
	defer c.Close()
	if _, err := c.Resolve(context.Background(), resolve.Request{AppID: "a"}); err != nil {
		t.Fatal(err)
	}
	c.MarkFailed("h:1")
	for range 3 {
		got, err := c.Resolve(context.Background(), resolve.Request{AppID: "a"})
		if err != nil || got != "h:2" {
			t.Fatalf("got %q, %v; want h:2", got, err)
		}
	}
}
