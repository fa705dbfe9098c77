package endpointslices

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/internal/kubetest"
)

// kube is the API server the package's tests share.
var kube *kubetest.Env

func TestMain(m *testing.M) {
	kube = kubetest.Start()
	os.Exit(kube.Run(m))
}

func clientset(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// watchClient is the client a Watcher uses in a sidecar.
func watchClient(t *testing.T, cfg *rest.Config) *kubecore.Client {
	t.Helper()
	c, err := kubecore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func namespace(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// Slice returns an EndpointSlice of service with the given addresses on
// the named port; addresses ending in "!" are not ready.
func Slice(ns, name, service, portName string, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("other"), Port: new(int32(1))}, {Name: &portName, Port: &port}},
	}
	for i, a := range addrs {
		ready := true
		if a[len(a)-1] == '!' {
			a, ready = a[:len(a)-1], false
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: name + "-" + string(rune('a'+i))},
		})
	}
	return s
}

// changes records OnChange calls.
type changes struct {
	mu   sync.Mutex
	keys []Key
}

func (c *changes) add(k Key) {
	c.mu.Lock()
	c.keys = append(c.keys, k)
	c.mu.Unlock()
}

// waitFor polls cond (the watcher's state) until it holds, failing after
// 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func addrs(eps []Endpoint, readyOnly bool) []string {
	var out []string
	for _, e := range eps {
		if !readyOnly || e.Ready {
			out = append(out, e.HostPort())
		}
	}
	return out
}

func run(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestWatchOneService follows the slices of one Service on a real API
// server: the first listing, an added slice, a changed one and a deleted
// one each reach Endpoints and OnChange; another Service's slices do not.
func TestWatchOneService(t *testing.T) {
	cs := clientset(t, kube.Require(t))
	ctx := context.Background()
	const ns = "watch-one"
	namespace(t, cs, ns)
	api := cs.DiscoveryV1().EndpointSlices(ns)
	if _, err := api.Create(ctx, Slice(ns, "orders-dapr-1", "orders-dapr", "dapr-internal", 50002, "10.0.0.2", "10.0.0.1", "10.0.0.3!"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Create(ctx, Slice(ns, "ledger-dapr-1", "ledger-dapr", "dapr-internal", 50002, "10.0.9.9"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ch := &changes{}
	orders := Key{Namespace: ns, Service: "orders-dapr"}
	w := New(Options{Client: watchClient(t, kube.Require(t)), Namespace: ns, Service: "orders-dapr", Port: "dapr-internal", OnChange: ch.add})
	if _, ok := w.Endpoints(orders); ok {
		t.Fatal("Endpoints answered before the first listing")
	}
	run(t, w)
	<-w.Ready()
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	eps, ok := w.Endpoints(orders)
	if !ok {
		t.Fatal("not synced after Ready")
	}
	if got, want := addrs(eps, false), []string{"10.0.0.1:50002", "10.0.0.2:50002", "10.0.0.3:50002"}; !slices.Equal(got, want) {
		t.Fatalf("endpoints %v, want %v", got, want)
	}
	if got, want := addrs(eps, true), []string{"10.0.0.1:50002", "10.0.0.2:50002"}; !slices.Equal(got, want) {
		t.Fatalf("ready endpoints %v, want %v", got, want)
	}
	if eps[0].Pod != "orders-dapr-1-b" {
		t.Fatalf("pod of %s is %q", eps[0].Address, eps[0].Pod)
	}
	if got := w.Services(); !slices.Equal(got, []Key{orders}) {
		t.Fatalf("services %v: the watch should select orders-dapr only", got)
	}

	// A second slice of the same Service (one address in both).
	if _, err := api.Create(ctx, Slice(ns, "orders-dapr-2", "orders-dapr", "dapr-internal", 50002, "10.0.0.4", "10.0.0.1!"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second slice", func() bool {
		eps, _ := w.Endpoints(orders)
		return slices.Equal(addrs(eps, true), []string{"10.0.0.1:50002", "10.0.0.2:50002", "10.0.0.4:50002"})
	})

	// The first slice changes: 10.0.0.2 goes, 10.0.0.3 becomes ready.
	s, err := api.Get(ctx, "orders-dapr-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints = Slice(ns, "orders-dapr-1", "", "", 0, "10.0.0.1", "10.0.0.3").Endpoints
	if _, err := api.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the changed slice", func() bool {
		eps, _ := w.Endpoints(orders)
		return slices.Equal(addrs(eps, true), []string{"10.0.0.1:50002", "10.0.0.3:50002", "10.0.0.4:50002"})
	})

	if err := api.Delete(ctx, "orders-dapr-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted slice", func() bool {
		eps, _ := w.Endpoints(orders)
		return slices.Equal(addrs(eps, false), []string{"10.0.0.1:50002", "10.0.0.4:50002"}) && slices.Equal(addrs(eps, true), []string{"10.0.0.4:50002"})
	})

	ch.mu.Lock()
	defer ch.mu.Unlock()
	// The first listing, the added, changed and deleted slices.
	if len(ch.keys) < 4 {
		t.Fatalf("OnChange called %d times (%v), want at least 4", len(ch.keys), ch.keys)
	}
	for _, k := range ch.keys {
		if k != orders {
			t.Fatalf("OnChange for %v: only orders-dapr is watched", k)
		}
	}
}

// TestWatchAllServices watches a whole namespace, as an xDS server would.
func TestWatchAllServices(t *testing.T) {
	cs := clientset(t, kube.Require(t))
	ctx := context.Background()
	const ns = "watch-all"
	namespace(t, cs, ns)
	api := cs.DiscoveryV1().EndpointSlices(ns)
	w := New(Options{Client: watchClient(t, kube.Require(t)), Namespace: ns, Port: "dapr-internal"})
	run(t, w)
	<-w.Ready()
	for _, svc := range []string{"a-dapr", "b-dapr"} {
		if _, err := api.Create(ctx, Slice(ns, svc+"-x", svc, "dapr-internal", 7, "10.1.0.1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := []Key{{ns, "a-dapr"}, {ns, "b-dapr"}}
	waitFor(t, "both services", func() bool { return slices.Equal(w.Services(), want) })
	eps, _ := w.Endpoints(want[1])
	if got := addrs(eps, true); !slices.Equal(got, []string{"10.1.0.1:7"}) {
		t.Fatalf("b-dapr endpoints %v", got)
	}
}

// TestForbidden: credentials that may not list EndpointSlices end the
// first listing with a Forbidden error (the resolver's cue for DNS), and
// the watch recovers once RBAC allows it.
func TestForbidden(t *testing.T) {
	const ns = "watch-forbidden"
	sa := kube.ServiceAccount(t, ns, "app")
	w := New(Options{Client: watchClient(t, sa), Namespace: ns, Service: "x-dapr", Backoff: 50 * time.Millisecond})
	run(t, w)
	<-w.Ready()
	if err := w.Err(); !apierrors.IsForbidden(err) {
		t.Fatalf("Err() = %v, want Forbidden", err)
	}
	if w.Synced() {
		t.Fatal("synced without permission")
	}
	kube.Grant(t, ns, "app", discoveryv1.GroupName, []string{"endpointslices"}, []string{"list", "watch"})
	waitFor(t, "the watch to recover after the grant", w.Synced)
	if err := w.Err(); err != nil {
		t.Fatalf("Err() = %v after recovery", err)
	}
}
