package kubernetes

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/invoke/resolve"
)

// kube is the API server the package's tests share.
var kube *kubetest.Env

func TestMain(m *testing.M) {
	kube = kubetest.Start()
	os.Exit(kube.Run(m))
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]any
		domain  string
		watch   bool
		tmpl    bool
		wantErr string
	}{
		{name: "defaults", in: nil, domain: "cluster.local", watch: true},
		{name: "cluster domain", in: map[string]any{"clusterDomain": "corp.example."}, domain: "corp.example", watch: true},
		{name: "case-insensitive keys", in: map[string]any{"CLUSTERDOMAIN": "x.y"}, domain: "x.y", watch: true},
		{name: "template turns the watch off", in: map[string]any{"template": "{{.ID}}:1"}, domain: "cluster.local", tmpl: true},
		{name: "watch off", in: map[string]any{"watchEndpointSlices": "false"}, domain: "cluster.local"},
		{name: "template and watch", in: map[string]any{"template": "{{.ID}}:1", "watchEndpointSlices": true}, wantErr: "remove"},
		{name: "bad template", in: map[string]any{"template": "{{.ID"}, wantErr: `"template"`},
		{name: "bad domain", in: map[string]any{"clusterDomain": "a b"}, wantErr: "clusterDomain"},
		{name: "bad bool", in: map[string]any{"watchEndpointSlices": "maybe"}, wantErr: "watchEndpointSlices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ClusterDomain != tt.domain || c.Watch != tt.watch || (c.Template != nil) != tt.tmpl || c.PortName != DefaultPortName {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

// fakeDNS answers lookups from a table.
func fakeDNS(table map[string][]string) func(context.Context, string) ([]net.IPAddr, error) {
	return func(_ context.Context, host string) ([]net.IPAddr, error) {
		ips, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []net.IPAddr
		for _, ip := range ips {
			out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
		}
		return out, nil
	}
}

func dnsOnly(t *testing.T, conf map[string]any, table map[string][]string) *Resolver {
	t.Helper()
	cfg, err := ParseConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	r := NewWithClient(resolve.Config{Self: resolve.Instance{AppID: "me", Namespace: "shop", InternalPort: 50002}}, cfg, nil)
	r.lookup = fakeDNS(table)
	return r
}

// TestDNS: without API access the resolver dials what Dapr dials, and
// spreads over every address DNS gives (a headless Service's pods).
func TestDNS(t *testing.T) {
	ctx := context.Background()
	r := dnsOnly(t, nil, map[string][]string{
		"orders-dapr.shop.svc.cluster.local": {"10.0.0.2", "10.0.0.1"},
		"ledger-dapr.bank.svc.cluster.local": {"fd00::1"},
	})
	got, err := r.List(ctx, resolve.Request{AppID: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:50002", "10.0.0.2:50002"}; !slices.Equal(got, want) {
		t.Fatalf("orders: %v, want %v", got, want)
	}
	if a, _ := r.Resolve(ctx, resolve.Request{AppID: "orders", Namespace: "shop"}); a != "10.0.0.1:50002" {
		t.Fatalf("first Resolve %s", a)
	}
	if a, _ := r.Resolve(ctx, resolve.Request{AppID: "orders", Namespace: "shop"}); a != "10.0.0.2:50002" {
		t.Fatalf("second Resolve %s (round robin)", a)
	}
	if a, err := r.Resolve(ctx, resolve.Request{AppID: "ledger", Namespace: "bank"}); err != nil || a != "[fd00::1]:50002" {
		t.Fatalf("ledger: %s, %v", a, err)
	}
	_, err = r.Resolve(ctx, resolve.Request{AppID: "nobody"})
	if !errors.Is(err, resolve.ErrNotFound) || !strings.Contains(err.Error(), "nobody-dapr.shop.svc.cluster.local") {
		t.Fatalf("unknown app: %v", err)
	}
}

func TestDNSTemplateAndDomain(t *testing.T) {
	ctx := context.Background()
	r := dnsOnly(t, map[string]any{"clusterDomain": "corp"}, nil)
	if a, _ := r.Address("ns1", "orders"); a != "orders-dapr.ns1.svc.corp:50002" {
		t.Fatalf("address %s", a)
	}
	r = dnsOnly(t, map[string]any{"template": "{{.ID}}-{{.Namespace}}.internal:{{.Port}}"}, map[string][]string{"orders-ns1.internal": {"10.9.9.9"}})
	got, err := r.List(ctx, resolve.Request{AppID: "orders", Namespace: "ns1"})
	if err != nil || !slices.Equal(got, []string{"10.9.9.9:50002"}) {
		t.Fatalf("template: %v, %v", got, err)
	}
	r = dnsOnly(t, map[string]any{"template": "{{.ID}}.internal"}, map[string][]string{"orders.internal": {"10.9.9.8"}})
	if got, _ := r.List(ctx, resolve.Request{AppID: "orders"}); !slices.Equal(got, []string{"10.9.9.8:50002"}) {
		t.Fatalf("template without a port: %v", got)
	}
}

func TestSplitAddress(t *testing.T) {
	for in, want := range map[string]string{
		"h:1": "h 1", "h": "h 7", "[::1]:5": "::1 5", "::1": "::1 7", "h:0": "", "h:x": "", ":1": "", "a b:1": "",
	} {
		h, p, err := SplitAddress(in, 7)
		got := h + " " + p
		if err != nil {
			got = ""
		}
		if got != want {
			t.Errorf("SplitAddress(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}

func clientset(t *testing.T, cfg *rest.Config) k8s.Interface {
	t.Helper()
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// sidecarClient is the client the resolver uses in a sidecar.
func sidecarClient(t *testing.T, cfg *rest.Config) *kubecore.Client {
	t.Helper()
	c, err := kubecore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func slice(ns, name, service string, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	portName := DefaultPortName
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	for _, a := range addrs {
		ready := !strings.HasSuffix(a, "!")
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{strings.TrimSuffix(a, "!")}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

// running starts r's watches for the test.
func running(t *testing.T, r *Resolver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEndpointSlices resolves through a real API server, with the pod's
// (service account's) own permissions: every ready pod of the Service is
// returned, scaling and a pod going away are pushed to the cache at once,
// and an app with no ready pod is not found.
func TestEndpointSlices(t *testing.T) {
	admin := clientset(t, kube.Require(t))
	const ns = "resolve-watch"
	sa := kube.ServiceAccount(t, ns, "caller")
	kube.Grant(t, ns, "caller", discoveryv1.GroupName, []string{"endpointslices"}, []string{"list", "watch"})
	ctx := context.Background()
	api := admin.DiscoveryV1().EndpointSlices(ns)
	if _, err := api.Create(ctx, slice(ns, "orders-dapr-a", "orders-dapr", 50002, "10.77.0.11"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	r := NewWithClient(resolve.Config{Self: resolve.Instance{AppID: "me", Namespace: ns, InternalPort: 1}}, Config{Watch: true}, sidecarClient(t, sa))
	r.lookup = fakeDNS(nil) // DNS must not be used
	running(t, r)
	cached := resolve.NewCached(r, time.Hour) // pushes, not the TTL, refresh it

	list := func() []string {
		got, _ := cached.List(ctx, resolve.Request{AppID: "orders", Namespace: ns})
		return got
	}
	// The grant may take a moment to reach the authorizer.
	eventually(t, "the first pod", func() bool { return slices.Equal(list(), []string{"10.77.0.11:50002"}) })

	// Scale to three: one more in this slice, one in a second slice.
	s, err := api.Get(ctx, "orders-dapr-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints = slice(ns, "", "", 0, "10.77.0.11", "10.77.0.12").Endpoints
	if _, err := api.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Create(ctx, slice(ns, "orders-dapr-b", "orders-dapr", 50012, "10.77.0.13"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.77.0.11:50002", "10.77.0.12:50002", "10.77.0.13:50012"}
	eventually(t, "three pods", func() bool { return slices.Equal(list(), want) })
	seen := map[string]bool{}
	for range 6 {
		a, err := cached.Resolve(ctx, resolve.Request{AppID: "orders", Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		seen[a] = true
	}
	if len(seen) != 3 {
		t.Fatalf("six calls went to %v, want all three pods", seen)
	}

	// A pod terminating (not ready) leaves the rotation.
	s, _ = api.Get(ctx, "orders-dapr-a", metav1.GetOptions{})
	s.Endpoints = slice(ns, "", "", 0, "10.77.0.11!", "10.77.0.12").Endpoints
	if _, err := api.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the terminating pod to go", func() bool { return slices.Equal(list(), want[1:]) })

	// No slices: not found, without asking DNS.
	if err := api.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no pods", func() bool {
		_, err := cached.Resolve(ctx, resolve.Request{AppID: "orders", Namespace: ns})
		return errors.Is(err, resolve.ErrNotFound) && strings.Contains(err.Error(), "no ready pod")
	})
}

// TestForbiddenFallsBackToDNS: a pod whose service account may not watch
// EndpointSlices resolves through DNS, as daprd does.
func TestForbiddenFallsBackToDNS(t *testing.T) {
	const ns = "resolve-forbidden"
	sa := kube.ServiceAccount(t, ns, "nobody")
	r := NewWithClient(resolve.Config{Self: resolve.Instance{Namespace: ns, InternalPort: 50002}}, Config{Watch: true}, sidecarClient(t, sa))
	r.lookup = fakeDNS(map[string][]string{"orders-dapr." + ns + ".svc.cluster.local": {"10.3.3.3"}})
	running(t, r)
	got, err := r.List(context.Background(), resolve.Request{AppID: "orders"})
	if err != nil || !slices.Equal(got, []string{"10.3.3.3:50002"}) {
		t.Fatalf("got %v, %v; want DNS's answer", got, err)
	}
	w := r.watcher(ns, "orders")
	if err := w.Err(); !apierrors.IsForbidden(err) {
		t.Fatalf("watch error %v, want Forbidden", err)
	}
}

// TestNewWithKubeconfig: New finds the API server through the kubeconfig
// in the configuration (a sidecar run outside the cluster, as in the
// end-to-end tests).
func TestNewWithKubeconfig(t *testing.T) {
	const ns = "resolve-kubeconfig"
	sa := kube.ServiceAccount(t, ns, "caller")
	kube.Grant(t, ns, "caller", discoveryv1.GroupName, []string{"endpointslices"}, []string{"list", "watch"})
	admin := clientset(t, kube.Require(t))
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(context.Background(), slice(ns, "x", "orders-dapr", 50002, "10.77.0.21"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	file := kubetest.Kubeconfig(t, sa)
	r, err := New(resolve.Config{Self: resolve.Instance{Namespace: ns}, Configuration: map[string]any{"kubeconfig": file}})
	if err != nil {
		t.Fatal(err)
	}
	if r.client == nil {
		t.Fatal("no API client from the kubeconfig")
	}
	running(t, r)
	eventually(t, "the pod", func() bool {
		got, _ := r.List(context.Background(), resolve.Request{AppID: "orders"})
		return slices.Equal(got, []string{"10.77.0.21:50002"})
	})
}
