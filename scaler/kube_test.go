package scaler

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tandemrun/tandem/internal/endpointslices"
	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/scaler/externalscaler"
)

// kube is the API server the package's tests share (only TestEndpointSlices uses it).
var kube *kubetest.Env

// TestMain starts one API server for the package; the run fails when a goroutine the tests started is still
// running after the last one.
func TestMain(m *testing.M) {
	kube = kubetest.Start()
	os.Exit(kube.Run(m))
}

// nodeIP is this machine's first IPv4 address that is not loopback: the API server refuses loopback addresses in
// EndpointSlices, so the sidecars stand there.
func nodeIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Skip("this machine has no IPv4 address but loopback, which EndpointSlices may not hold")
	return ""
}

// sidecarAt is newSidecar listening on ip.
func sidecarAt(t *testing.T, ip string, rep loadreport.Report) (*sidecar, int32) {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := newSidecar(t, rep)
	s.srv.Close()
	s.srv = httptest.NewUnstartedServer(s.srv.Config.Handler)
	s.srv.Listener = lis
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s, int32(lis.Addr().(*net.TCPAddr).Port)
}

// slice is an EndpointSlice of service, as the endpoints controller writes it: one endpoint per address, the
// port named dapr-http (and another before it).
func slice(ns, name, service string, port int32, serving bool, addrs ...string) *discoveryv1.EndpointSlice {
	httpName, other, one := SidecarPortName, "dapr-grpc", int32(1)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &other, Port: &one}, {Name: &httpName, Port: &port}},
	}
	for i, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: &serving, Serving: &serving},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: name + "-" + strconv.Itoa(i)}})
	}
	return s
}

// TestEndpointSlices finds an app's sidecars through a real API server: the serving endpoints of its
// <app-id>-dapr Service's slices, at the slice's dapr-http port or at a fixed port; another app's slices and
// endpoints that do not serve are left out; with the slices gone the app has no replica (no error).
func TestEndpointSlices(t *testing.T) {
	cfg := kube.Require(t)
	ip := nodeIP(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const ns = "scaler-shop"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, p1 := sidecarAt(t, ip, loadreport.Report{AppID: "orders", Namespace: ns, InvocationsInFlight: 2})
	_, p2 := sidecarAt(t, ip, loadreport.Report{AppID: "orders", Namespace: ns, InvocationsInFlight: 3})
	_, pb := sidecarAt(t, ip, loadreport.Report{AppID: "billing", Namespace: ns, InvocationsInFlight: 100})
	api := cs.DiscoveryV1().EndpointSlices(ns)
	for _, s := range []*discoveryv1.EndpointSlice{
		slice(ns, "orders-dapr-a", ServiceName("orders"), p1, true, ip),
		slice(ns, "orders-dapr-b", ServiceName("orders"), p2, true, ip),
		// A pod that is not ready: its sidecar is not asked (port 9 would fail).
		slice(ns, "orders-dapr-c", ServiceName("orders"), 9, false, ip),
		slice(ns, "billing-dapr-a", ServiceName("billing"), pb, true, ip),
	} {
		if _, err := api.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	wc, err := kubecore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := endpointslices.New(endpointslices.Options{Client: wc, Port: SidecarPortName})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	q := Query{AppID: "orders", Namespace: ns, Metric: MetricInvocations}
	r := &Reader{Finder: EndpointSlices(w, 0)}
	reports, err := r.Reports(ctx, "orders", ns)
	if err != nil || len(reports) != 2 || q.Value(reports) != 5 {
		t.Fatalf("Reports = %+v, %v; want the two serving sidecars of orders (5 in flight)", reports, err)
	}
	if urls, _ := EndpointSlices(w, 0).Find(ctx, "orders", "other-namespace"); len(urls) != 0 {
		t.Errorf("orders in another namespace: %v", urls)
	}
	if _, err := EndpointSlices(w, 0).Find(ctx, "orders", ""); err == nil {
		t.Error("no error without a namespace")
	}

	// A fixed port (the sidecars' public port): the slices' addresses, that port.
	urls, err := EndpointSlices(w, int(pb)).Find(ctx, "billing", ns)
	if err != nil || !slices.Equal(urls, []string{"http://" + net.JoinHostPort(ip, strconv.Itoa(int(pb)))}) {
		t.Errorf("billing at a fixed port: %v, %v", urls, err)
	}

	// Scaled to zero: the endpoints controller empties the slices; no replica, no error.
	for _, name := range []string{"orders-dapr-a", "orders-dapr-b", "orders-dapr-c"} {
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		reports, err = r.Reports(ctx, "orders", ns)
		if err == nil && len(reports) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the slices were deleted: %+v, %v; want no report and no error", reports, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv, err := New(Options{Reports: r.Reports})
	if err != nil {
		t.Fatal(err)
	}
	ref := &externalscaler.ScaledObjectRef{Name: "orders", Namespace: ns, ScalerMetadata: map[string]string{"appId": "orders", "metric": "invocations"}}
	if a, err := srv.IsActive(ctx, ref); err != nil || a.GetResult() {
		t.Errorf("IsActive with no replica = %v, %v; want false", a, err)
	}
}
