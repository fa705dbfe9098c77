package xds

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/resiliency"
)

const resiliencyYAML = `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: r
spec:
  policies:
    timeouts:
      fast: 2s
    retries:
      three:
        policy: constant
        duration: 100ms
        maxRetries: 3
        matching:
          gRPCStatusCodes: "14"
      forever:
        policy: exponential
        maxInterval: 3s
    circuitBreakers:
      cb:
        timeout: 30s
        trip: consecutiveFailures > 2
  targets:
    apps:
      orders:
        timeout: fast
        retry: three
        circuitBreaker: cb
      billing:
        retry: forever
`

func testPolicies(t *testing.T) func(string) *resiliency.Policy {
	t.Helper()
	docs, _, err := resiliency.Parse("r.yaml", []byte(resiliencyYAML))
	if err != nil {
		t.Fatal(err)
	}
	set, err := resiliency.Build("", docs)
	if err != nil {
		t.Fatal(err)
	}
	return set.ForApp
}

func testApps() []App {
	return []App{
		{ID: "orders", Namespace: "default", Endpoints: []Endpoint{
			{Host: "10.0.0.1", Port: 50002, Health: Healthy},
			{Host: "10.0.0.2", Port: 50002, Health: Draining},
			{Host: "10.0.0.3", Port: 50002, Health: Unhealthy},
		}},
		{ID: "billing", Namespace: "prod", Endpoints: []Endpoint{{Host: "::1", Port: 4000}}},
		{ID: "empty", Namespace: "default"},
	}
}

// TestBuildConformance runs go-control-plane's own checks on what Build
// produces: protoc-gen-validate on every resource, the snapshot's
// consistency check (every EDS cluster has its load assignment and nothing
// else is there), and the cache's acceptance of the snapshot.
func TestBuildConformance(t *testing.T) {
	snap, err := Build("1", testApps(), BuildOptions{TrustDomain: spiffeid.RequireTrustDomainFromString("public"), Policy: testPolicies(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []resource.Type{resource.ListenerType, resource.ClusterType, resource.EndpointType} {
		for name, r := range snap.GetResources(typ) {
			if err := r.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Errorf("%s %s: %v", typ, name, err)
			}
		}
	}
	c := cachev3.NewSnapshotCache(true, nodeGroup{}, nil)
	if err := c.SetSnapshot(t.Context(), "tandem", snap); err != nil {
		t.Fatal(err)
	}

	ls := snap.GetResources(resource.ListenerType)
	for _, want := range []string{"orders", "orders.default", "billing.prod", "empty", "empty.default"} {
		if _, ok := ls[want]; !ok {
			t.Errorf("no listener %q (have %v)", want, keys(ls))
		}
	}
	if _, ok := ls["billing"]; ok {
		t.Error("an app outside the default namespace got a bare-ID listener")
	}

	// Route: timeout and retry from Resiliency.
	var hcm hcmv3.HttpConnectionManager
	if err := ls["orders"].(*listenerv3.Listener).GetApiListener().GetApiListener().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	action := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute()
	if got := action.GetCluster(); got != "cluster/orders.default" {
		t.Errorf("route to %q", got)
	}
	rp := action.GetRetryPolicy()
	if rp.GetRetryOn() != "unavailable" || rp.GetNumRetries().GetValue() != 3 || rp.GetPerTryTimeout().AsDuration() != 2*time.Second {
		t.Errorf("retry policy %v", rp)
	}
	if got := action.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration(); got != 8*time.Second {
		t.Errorf("max_stream_duration %v, want 4 attempts of 2s", got)
	}

	// Cluster: mTLS by certificate providers, SAN of the callee.
	cl := snap.GetResources(resource.ClusterType)["cluster/orders.default"].(*clusterv3.Cluster)
	var up tlsv3.UpstreamTlsContext
	if err := cl.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
		t.Fatal(err)
	}
	vc := up.GetCommonTlsContext().GetValidationContext()
	//lint:ignore SA1019 the field gRPC reads
	if got := vc.GetMatchSubjectAltNames()[0].GetExact(); got != "spiffe://public/ns/default/orders" {
		t.Errorf("SAN matcher %q", got)
	}
	if vc.GetCaCertificateProviderInstance().GetInstanceName() != DefaultCertProvider ||
		up.GetCommonTlsContext().GetTlsCertificateProviderInstance().GetInstanceName() != DefaultCertProvider {
		t.Error("certificate provider instances not set")
	}
	od := cl.GetOutlierDetection()
	if od.GetConsecutive_5Xx().GetValue() != 3 || od.GetBaseEjectionTime().AsDuration() != 30*time.Second {
		t.Errorf("outlier detection %v", od)
	}
	if cl.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue() != DefaultMaxRequests {
		t.Error("circuit breaker thresholds not set")
	}
	if snap.GetResources(resource.ClusterType)["cluster/billing.prod"].(*clusterv3.Cluster).GetOutlierDetection() != nil {
		t.Error("outlier detection without a circuit breaker")
	}

	// Endpoints with health.
	la := snap.GetResources(resource.EndpointType)["cluster/orders.default"].(*endpointv3.ClusterLoadAssignment)
	var health []string
	for _, e := range la.GetEndpoints()[0].GetLbEndpoints() {
		health = append(health, e.GetHealthStatus().String())
	}
	if strings.Join(health, ",") != "HEALTHY,DRAINING,UNHEALTHY" {
		t.Errorf("health %v", health)
	}
}

func TestBuildRejects(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("public")
	for name, apps := range map[string][]App{
		"bad app id":    {{ID: "a/b", Namespace: "default"}},
		"duplicate app": {{ID: "a", Namespace: "default"}, {ID: "a", Namespace: "default"}},
		"empty host":    {{ID: "a", Namespace: "default", Endpoints: []Endpoint{{Host: "", Port: 1}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Build("1", apps, BuildOptions{TrustDomain: td}); err == nil {
				t.Error("Build accepted it")
			}
		})
	}
	if _, err := Build("1", nil, BuildOptions{}); err == nil {
		t.Error("Build without a trust domain")
	}
}

func TestConsecutiveFailures(t *testing.T) {
	for trip, want := range map[string]uint32{
		"consecutiveFailures > 5": 6, "consecutiveFailures >= 3": 3, " consecutiveFailures>0 ": 1,
		"requests > 5": 0, "consecutiveFailures > 2 && requests > 1": 0, "": 0,
		"consecutiveFailures > 99999999999999999999": 0,
	} {
		if got := ConsecutiveFailures(trip); got != want {
			t.Errorf("%q: %d, want %d", trip, got, want)
		}
	}
}

func FuzzConsecutiveFailures(f *testing.F) {
	for _, s := range []string{"consecutiveFailures > 5", "consecutiveFailures >= 0", "x", "consecutiveFailures > 2147483647"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := ConsecutiveFailures(s)
		if n == 0 {
			return
		}
		if !strings.Contains(s, "consecutiveFailures") {
			t.Fatalf("%q gave %d", s, n)
		}
	})
}

func keys(m map[string]types.Resource) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
