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
	"github.com/tandemrun/tandem/invoke/resolve/xds"
)

func TestNew(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "nr.db")
	tests := []struct {
		name, component, fallback string
		cfg                       map[string]any
		self                      bool
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
		{name: "xds", component: "xds", cfg: map[string]any{"server": "127.0.0.1:1", "insecure": true}, wantType: "xds"},
		{name: "xds registering in sqlite", component: "xds", self: true, cfg: map[string]any{"server": "127.0.0.1:1", "insecure": true,
			"registry": map[string]any{"connectionString": dbFile}}, wantType: "xds+sqlite"},
		{name: "xds registry not a map", component: "xds", self: true, cfg: map[string]any{"server": "127.0.0.1:1", "insecure": true,
			"registry": dbFile}, wantErr: `"registry" must be a map`},
		{name: "unknown", component: "consul", wantErr: "use one of kubernetes, mdns, sqlite, static, xds"},
		{name: "backend error names component", component: "sqlite", cfg: map[string]any{}, wantErr: `name resolution "sqlite"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				r   resolve.Resolver
				err error
			)
			cfg := resolve.Config{Configuration: tt.cfg}
			if tt.self {
				cfg.Self = resolve.Instance{AppID: "me", Namespace: "default", Address: "127.0.0.1", InternalPort: 50002}
			}
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
			case *xds.Resolver:
				got = "xds"
			case *registered:
				got = "xds+sqlite"
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

// The xds component with a registry registers this sidecar in the SQLite
// file the xDS server follows, and deregisters it on Close.
func TestXDSRegisters(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "nr.db")
	self := resolve.Instance{AppID: "me", Namespace: "default", Address: "127.0.0.1", InternalPort: 50002}
	r, err := New("xds", resolve.Config{Self: self, Configuration: map[string]any{
		"server": "127.0.0.1:1", "insecure": true, "registry": map[string]any{"connectionString": dbFile},
	}})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := sqlite.New(resolve.Config{Configuration: map[string]any{"connectionString": dbFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	got, err := peer.List(context.Background(), resolve.Request{AppID: "me"})
	if err != nil || len(got) != 1 || got[0] != "127.0.0.1:50002" {
		t.Fatalf("registered rows: %v, %v", got, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.(resolve.Runner).Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := peer.List(context.Background(), resolve.Request{AppID: "me"}); err == nil {
		t.Fatalf("still registered after Close: %v", got)
	}
}
