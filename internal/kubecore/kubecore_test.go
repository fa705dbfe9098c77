package kubecore

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/tandemrun/tandem/internal/kubetest"
)

// kube is the API server the package's tests share.
var kube *kubetest.Env

func TestMain(m *testing.M) {
	kube = kubetest.Start()
	os.Exit(kube.Run(m))
}

// TestAgainstAPIServer: Secrets are read and listed, EndpointSlices are
// listed by label and watched from a version, and errors keep the API
// server's status (a missing Secret is NotFound, a denied list Forbidden),
// all as client-go's Clientset would do it.
func TestAgainstAPIServer(t *testing.T) {
	cfg := kube.Require(t)
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ns = "kubecore"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"k": []byte("v-" + name)}}
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	s, err := c.Secret(ctx, ns, "b")
	if err != nil || string(s.Data["k"]) != "v-b" {
		t.Fatalf("Secret b: %v, %v", s, err)
	}
	if _, err := c.Secret(ctx, ns, "missing"); !apierrors.IsNotFound(err) {
		t.Fatalf("missing Secret: %v, want NotFound", err)
	}
	l, err := c.Secrets(ctx, ns, metav1.ListOptions{})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("Secrets: %d items, %v; want 2", len(l.Items), err)
	}

	slice := func(name, service string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}},
		}
	}
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice("orders-1", "orders"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice("billing-1", "billing"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel := discoveryv1.LabelServiceName + "=orders"
	el, err := c.EndpointSlices(ctx, ns, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(el.Items) != 1 || el.Items[0].Name != "orders-1" {
		t.Fatalf("EndpointSlices of orders: %+v, %v", el, err)
	}
	all, err := c.EndpointSlices(ctx, "", metav1.ListOptions{})
	if err != nil || len(all.Items) < 2 {
		t.Fatalf("EndpointSlices of every namespace: %v items, %v", len(all.Items), err)
	}

	w, err := c.WatchEndpointSlices(ctx, ns, metav1.ListOptions{LabelSelector: sel, ResourceVersion: el.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice("billing-2", "billing"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice("orders-2", "orders"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		got, ok := ev.Object.(*discoveryv1.EndpointSlice)
		if ev.Type != watch.Added || !ok || got.Name != "orders-2" {
			t.Fatalf("watch event %s %T %+v, want ADDED orders-2 (billing's slice is not selected)", ev.Type, ev.Object, ev.Object)
		}
	case <-ctx.Done():
		t.Fatal("no watch event")
	}

	// A service account with no grant: the API server's refusal comes
	// through as Forbidden.
	sa, err := New(kube.ServiceAccount(t, ns, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Secrets(ctx, ns, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list as an account with no grant: %v, want Forbidden", err)
	}
}
