package xds

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
)

// staticSource is a Source whose apps the test sets.
type staticSource struct {
	mu      sync.Mutex
	apps    []App
	changed chan struct{}
}

func newStaticSource(apps []App) *staticSource {
	return &staticSource{apps: apps, changed: make(chan struct{}, 1)}
}

func (s *staticSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s *staticSource) Changed() <-chan struct{}      { return s.changed }
func (s *staticSource) Apps() []App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]App, len(s.apps))
	for i, a := range s.apps {
		a.Endpoints = append([]Endpoint(nil), a.Endpoints...)
		out[i] = a
	}
	return out
}

func (s *staticSource) set(apps []App) {
	s.mu.Lock()
	s.apps = apps
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func startServer(t *testing.T, src Source) (*Server, *grpc.ClientConn) {
	t.Helper()
	srv, err := New(Options{Source: src, Build: BuildOptions{TrustDomain: spiffeid.RequireTrustDomainFromString("public")}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, nil, spiffeid.TrustDomain{}) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, cc
}

func endpointCount(t *testing.T, res []*anypb.Any) int {
	t.Helper()
	n := 0
	for _, r := range res {
		var la endpointv3.ClusterLoadAssignment
		if err := r.UnmarshalTo(&la); err != nil {
			t.Fatal(err)
		}
		for _, l := range la.GetEndpoints() {
			n += len(l.GetLbEndpoints())
		}
	}
	return n
}

// TestServerStateOfTheWorld: a client gets the clusters over ADS, its NACK
// is recorded while the server keeps serving, and a change is pushed.
func TestServerStateOfTheWorld(t *testing.T) {
	src := newStaticSource(testApps())
	srv, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "test-client"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNames: []string{"cluster/orders.default"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := endpointCount(t, resp.GetResources()); got != 3 {
		t.Fatalf("%d endpoints, want 3", got)
	}
	// NACK it.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{
		TypeUrl: resource.EndpointType, ResourceNames: []string{"cluster/orders.default"}, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 3, Message: "test rejects it"},
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); srv.NACKs()["test-client/"+resource.EndpointType] == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("NACK not recorded: %v", srv.NACKs())
		}
	}
	// A change is pushed (after the current version again, which a
	// client that NACKed with no accepted version is owed).
	apps := testApps()
	apps[0].Endpoints = apps[0].Endpoints[:1]
	src.set(apps)
	for {
		resp, err = stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the change: %v", err)
		}
		if endpointCount(t, resp.GetResources()) == 1 {
			break
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{"cluster/orders.default"}, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServerDelta: the same over the incremental protocol.
func TestServerDelta(t *testing.T) {
	src := newStaticSource(testApps())
	_, cc := startServer(t, src)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		Node: &corev3.Node{Id: "delta-client"}, TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"cluster/orders.default"},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 1 {
		t.Fatalf("%d resources, want 1", len(resp.GetResources()))
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	apps := testApps()
	apps[0].Endpoints = append(apps[0].Endpoints, Endpoint{Host: "10.0.0.4", Port: 50002})
	src.set(apps)
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var la endpointv3.ClusterLoadAssignment
	if err := resp.GetResources()[0].GetResource().UnmarshalTo(&la); err != nil {
		t.Fatal(err)
	}
	if n := len(la.GetEndpoints()[0].GetLbEndpoints()); n != 4 {
		t.Fatalf("after the change: %d endpoints, want 4", n)
	}
}
