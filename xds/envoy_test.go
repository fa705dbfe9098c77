package xds

import (
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
)

func envoyOptions(t *testing.T) EnvoyOptions {
	return EnvoyOptions{
		Server:      "xds.tandem.svc:50061",
		Dir:         "/etc/tandem/ingress",
		TrustDomain: spiffeid.RequireTrustDomainFromString("public"),
		Apps:        []App{{ID: "orders"}, {ID: "billing", Namespace: "prod"}},
		Policy:      testPolicies(t),
	}
}

func upstreamTLS(t *testing.T, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	var u tlsv3.UpstreamTlsContext
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&u); err != nil {
		t.Fatalf("cluster %s: transport socket: %v", c.Name, err)
	}
	return &u
}

// TestEnvoyBootstrap: the ingress bootstrap passes the protos' ValidateAll
// (also after a JSON round trip, which is what envoy -c reads), takes ADS
// from the xDS server over mTLS checking its SPIFFE ID, has one EDS cluster
// per exposed app checking that app's SPIFFE ID, with certificates from
// the SDS files, and routes by :authority with the Resiliency timeout.
func TestEnvoyBootstrap(t *testing.T) {
	js, err := EnvoyBootstrapJSON(envoyOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("the JSON does not parse back: %v\n%s", err, js)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll after a round trip: %v", err)
	}
	ads := b.GetDynamicResources().GetAdsConfig()
	if ads.GetApiType().String() != "GRPC" || ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != EnvoyXDSCluster {
		t.Errorf("ads_config %v, want gRPC to %s", ads, EnvoyXDSCluster)
	}
	sans := map[string]string{}
	sdsPaths := map[string]bool{}
	for _, c := range b.GetStaticResources().GetClusters() {
		u := upstreamTLS(t, c)
		ctx := u.GetCommonTlsContext()
		sans[c.Name] = ctx.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact()
		for _, s := range append(ctx.GetTlsCertificateSdsSecretConfigs(), ctx.GetCombinedValidationContext().GetValidationContextSdsSecretConfig()) {
			sdsPaths[s.GetName()+"="+s.GetSdsConfig().GetPathConfigSource().GetPath()] = true
		}
		if c.Name != EnvoyXDSCluster {
			if c.GetType() != clusterv3.Cluster_EDS || c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil || c.GetEdsClusterConfig().GetServiceName() != c.Name {
				t.Errorf("cluster %s is not EDS over ADS for its own name: %v", c.Name, c.GetEdsClusterConfig())
			}
		}
		if got := ctx.GetAlpnProtocols(); len(got) != 1 || got[0] != "h2" {
			t.Errorf("cluster %s offers ALPN %v, want h2", c.Name, got)
		}
	}
	want := map[string]string{
		EnvoyXDSCluster:          "spiffe://public/ns/default/dapr-xds",
		"cluster/orders.default": "spiffe://public/ns/default/orders",
		"cluster/billing.prod":   "spiffe://public/ns/prod/billing",
	}
	if len(sans) != len(want) {
		t.Errorf("clusters %v, want %v", sans, want)
	}
	for c, san := range want {
		if sans[c] != san {
			t.Errorf("cluster %s accepts %q, want %q", c, sans[c], san)
		}
	}
	for _, p := range []string{
		EnvoySVIDSecret + "=/etc/tandem/ingress/" + EnvoySVIDFile,
		EnvoyRootsSecret + "=/etc/tandem/ingress/" + EnvoyRootsFile,
	} {
		if !sdsPaths[p] {
			t.Errorf("no cluster reads the secret %s; they read %v", p, sdsPaths)
		}
	}

	l := b.GetStaticResources().GetListeners()[0]
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if l.GetAddress().GetSocketAddress().GetPortValue() != 10000 {
		t.Errorf("ingress listens on %v, want port 10000", l.GetAddress())
	}
	routes := map[string]string{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			r := vh.GetRoutes()[0].GetRoute()
			routes[d] = r.GetCluster() + " " + r.GetTimeout().AsDuration().String()
		}
	}
	for d, r := range map[string]string{
		"orders": "cluster/orders.default 8s", "orders.default": "cluster/orders.default 8s",
		"billing.prod": "cluster/billing.prod 0s",
	} {
		if routes[d] != r {
			t.Errorf(":authority %s routes to %q, want %q (all: %v)", d, routes[d], r, routes)
		}
	}
	if _, ok := routes["billing"]; ok {
		t.Error("an app of another namespace is reachable by its bare ID")
	}
}

func TestEnvoyBootstrapPlaintext(t *testing.T) {
	o := envoyOptions(t)
	o.Plaintext = true
	b, err := EnvoyBootstrap(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.Name == EnvoyXDSCluster && c.GetTransportSocket() != nil {
			t.Error("plaintext: the xDS cluster still has TLS")
		}
		if c.Name != EnvoyXDSCluster && c.GetTransportSocket() == nil {
			t.Errorf("plaintext to the xDS server must not turn off mTLS to %s", c.Name)
		}
	}
}

func TestEnvoyBootstrapRejects(t *testing.T) {
	for name, change := range map[string]func(*EnvoyOptions){
		"no apps":         func(o *EnvoyOptions) { o.Apps = nil },
		"no server":       func(o *EnvoyOptions) { o.Server = "" },
		"server port":     func(o *EnvoyOptions) { o.Server = "xds:0" },
		"no port":         func(o *EnvoyOptions) { o.Server = "xds" },
		"no folder":       func(o *EnvoyOptions) { o.Dir = "" },
		"bad app ID":      func(o *EnvoyOptions) { o.Apps = []App{{ID: "a/b"}} },
		"no trust domain": func(o *EnvoyOptions) { o.TrustDomain = spiffeid.TrustDomain{} },
	} {
		t.Run(name, func(t *testing.T) {
			o := envoyOptions(t)
			change(&o)
			if _, err := EnvoyBootstrap(o); err == nil {
				t.Error("accepted")
			}
		})
	}
	// The validation that guards the output is the protos' own: a broken
	// field is caught.
	b, err := EnvoyBootstrap(envoyOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	b.GetStaticResources().GetClusters()[1].ConnectTimeout = durationpb.New(-1)
	if err := b.ValidateAll(); err == nil || !strings.Contains(err.Error(), "ConnectTimeout") {
		t.Errorf("ValidateAll of a negative connect timeout: %v", err)
	}
}

// TestEnvoySDSFiles: the SDS files are DiscoveryResponses with one valid
// Secret each, named as the clusters ask, reading the identity folder's
// files and reloading on moves into it.
func TestEnvoySDSFiles(t *testing.T) {
	dir := "/etc/tandem/ingress"
	files, err := EnvoySDSFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{EnvoySVIDFile: EnvoySVIDSecret, EnvoyRootsFile: EnvoyRootsSecret}
	if len(files) != len(want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	for name, secret := range want {
		var resp discoveryv3.DiscoveryResponse
		if err := protojson.Unmarshal(files[name], &resp); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(resp.GetResources()) != 1 {
			t.Fatalf("%s has %d resources", name, len(resp.GetResources()))
		}
		var s tlsv3.Secret
		if err := resp.GetResources()[0].UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		if err := s.ValidateAll(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if s.GetName() != secret {
			t.Errorf("%s holds secret %q, want %q", name, s.GetName(), secret)
		}
		var paths []string
		var watched string
		if c := s.GetTlsCertificate(); c != nil {
			paths = []string{c.GetCertificateChain().GetFilename(), c.GetPrivateKey().GetFilename()}
			watched = c.GetWatchedDirectory().GetPath()
		} else {
			paths = []string{s.GetValidationContext().GetTrustedCa().GetFilename()}
			watched = s.GetValidationContext().GetWatchedDirectory().GetPath()
		}
		for _, p := range paths {
			if filepath.Dir(p) != dir || !strings.HasSuffix(p, ".pem") {
				t.Errorf("%s reads %q, want a .pem in %s", name, p, dir)
			}
		}
		if watched != dir {
			t.Errorf("%s watches %q, want %s", name, watched, dir)
		}
	}
}
