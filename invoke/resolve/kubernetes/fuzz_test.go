package kubernetes

import (
	"context"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/invoke/resolve"
)

// FuzzConfig feeds the configuration parser and the address it builds
// arbitrary cluster domains and templates: nothing panics, and an address
// that SplitAddress accepts has a non-empty host and a port in range.
func FuzzConfig(f *testing.F) {
	for _, s := range [][3]string{
		{"", "", "orders"},
		{"cluster.local", "", "orders"},
		{"corp.example.", "{{.ID}}-{{.Namespace}}.internal:{{.Port}}", "a"},
		{"", "{{.ID}}.svc", "x"},
		{"", "{{.Data.zone}}:{{.Port}}", "x"},
		{"", "{{.Nope}}", "x"},
		{"a b", "{{", "x"},
		{"", "[{{.ID}}]:{{.Port}}", "::1"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, domain, tmpl, app string) {
		cfg, err := ParseConfig(map[string]any{"clusterDomain": domain, "template": tmpl})
		if err != nil {
			return
		}
		if cfg.ClusterDomain == "" || strings.ContainsAny(cfg.ClusterDomain, " /:") {
			t.Fatalf("accepted cluster domain %q", cfg.ClusterDomain)
		}
		r := NewWithClient(resolve.Config{Self: resolve.Instance{Namespace: "ns", InternalPort: 50002}}, cfg, nil)
		addr, err := r.Address("ns", app)
		if err != nil {
			return
		}
		host, port, err := SplitAddress(addr, 50002)
		if err != nil {
			return
		}
		if host == "" || port == "" || port == "0" {
			t.Fatalf("SplitAddress(%q) = %q, %q", addr, host, port)
		}
		r.lookup = fakeDNS(nil)
		_, _ = r.List(context.Background(), resolve.Request{AppID: app})
	})
}
