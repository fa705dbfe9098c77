package httpapi

import (
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/headers"
)

// testForwarded is the sidecar's forwarding entries in these tests.
var testForwarded = headers.NewForwarded("192.0.2.10", "sidecar-host")

// hostForwarded returns the entries the sidecar adds to a call.
func hostForwarded(t *testing.T) headers.Metadata {
	t.Helper()
	md := headers.Metadata{}
	testForwarded.AddTo(md)
	return md
}

// TestInvokeForwardedMetadata checks the forwarding entries daprd adds to
// an invocation: X-Forwarded-For, X-Forwarded-Host and Forwarded after any
// the caller sent, on both ways of naming the target, and none when the
// app calls itself.
func TestInvokeForwardedMetadata(t *testing.T) {
	ours := hostForwarded(t)
	tests := []struct {
		name   string
		path   string
		header map[string]string
		self   bool // the target is this app, or a service outside Dapr
		// caller is what the calling app sent for each forwarding name.
		caller map[string][]string
	}{
		{name: "invoke path", path: "/v1.0/invoke/other/method/m"},
		{name: "dapr-app-id header", path: "/m", header: map[string]string{"dapr-app-id": "other"}},
		{
			name: "after the caller's values", path: "/v1.0/invoke/other.ns2/method/m",
			header: map[string]string{"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"},
			caller: map[string][]string{"x-forwarded-for": {"203.0.113.9"}, "forwarded": {"for=203.0.113.9"}},
		},
		{
			name: "self invocation adds nothing", path: "/v1.0/invoke/me/method/m", self: true,
			header: map[string]string{"X-Forwarded-For": "203.0.113.9"},
			caller: map[string][]string{"x-forwarded-for": {"203.0.113.9"}},
		},
		{name: "HTTP endpoint adds nothing", path: "/v1.0/invoke/ext/method/m", self: true},
		{name: "URL target adds nothing", path: "/v1.0/invoke/http://192.0.2.1:80/method/m", self: true},
	}
	external := func(target string) bool { return target == "ext" || strings.HasPrefix(target, "http://") }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInvoker{}
			srv := serve(t, Config{AppID: "me", Forwarded: testForwarded, Invoker: inv, External: external})
			if resp, body := do(t, "POST", srv.URL+tt.path, strings.NewReader("x"), tt.header); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			md := inv.last().req.Message.GetMetadata()
			for _, k := range []string{"x-forwarded-for", "x-forwarded-host", "forwarded"} {
				want := slices.Clone(tt.caller[k])
				if !tt.self {
					want = append(want, ours[k].GetValues()...)
				}
				if got := md[k].GetValues(); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestForwardedHeadersReachApp sends an invocation through the real HTTP
// app channel: the app gets the forwarding entries as headers.
func TestForwardedHeadersReachApp(t *testing.T) {
	ours := hostForwarded(t)
	seen := make(chan http.Header, 1)
	app := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
	}))
	defer app.Close()
	addr := app.Listener.Addr().(*net.TCPAddr)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Address: addr.IP.String(), Port: addr.Port})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	srv := serve(t, Config{AppID: "me", Forwarded: testForwarded, Invoker: localInvoker{ch}})

	resp, _ := do(t, "GET", srv.URL+"/v1.0/invoke/other/method/hi", nil, map[string]string{"X-Forwarded-For": "203.0.113.9"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := <-seen
	for name, key := range map[string]string{
		"X-Forwarded-For": "x-forwarded-for", "X-Forwarded-Host": "x-forwarded-host", "Forwarded": "forwarded",
	} {
		var want []string
		if name == "X-Forwarded-For" {
			want = []string{"203.0.113.9"}
		}
		want = append(want, ours[key].GetValues()...)
		if got := h.Values(name); !slices.Equal(got, want) {
			t.Errorf("app saw %s %q, want %q", name, got, want)
		}
	}
}
