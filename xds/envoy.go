package xds

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/resiliency"
)

// Names in the Envoy ingress bootstrap.
const (
	// EnvoyXDSCluster is the static cluster of the xDS server.
	EnvoyXDSCluster = "tandem_xds"
	// EnvoySVIDSecret and EnvoyRootsSecret are the SDS secrets Envoy reads
	// from the identity folder (EnvoySDSFiles).
	EnvoySVIDSecret  = "tandem-svid"
	EnvoyRootsSecret = "tandem-roots"
	// EnvoySVIDFile and EnvoyRootsFile are the SDS files in that folder.
	EnvoySVIDFile  = "envoy-sds-svid.json"
	EnvoyRootsFile = "envoy-sds-roots.json"
	// XDSServerAppID is the xDS server's app ID in its SPIFFE ID
	// (spiffe://<td>/ns/<ns>/dapr-xds).
	XDSServerAppID = "dapr-xds"
)

// EnvoyOptions describe an Envoy ingress in front of the mesh: it listens
// for gRPC (and HTTP/2) calls, routes them by :authority (the app ID, or
// <app-id>.<namespace>) to the app's sidecars, whose endpoints it takes
// over ADS from our xDS server, and calls them over mTLS with the SVID that
// `tandem identity` keeps in Dir.
type EnvoyOptions struct {
	// Server is the xDS server's host:port (an IP address or a DNS name).
	Server string
	// NodeID names the Envoy in the server's logs ("envoy-ingress").
	NodeID string
	// Dir is the identity folder (cert.pem, key.pem, ca.pem) of the
	// ingress's app ID, kept by `tandem identity`.
	Dir string
	// Listen is the ingress's address and port (0.0.0.0:10000).
	ListenAddress string
	ListenPort    uint32
	// AdminPort is Envoy's admin port on 127.0.0.1 (9901).
	AdminPort uint32
	// TrustDomain of the sidecars and the xDS server.
	TrustDomain spiffeid.TrustDomain
	// ServerNamespace is the xDS server's namespace (default).
	ServerNamespace string
	// Apps are the apps the ingress exposes; Namespace defaults to
	// "default".
	Apps []App
	// Policy, if set, gives an app's Resiliency timeout and retries.
	Policy func(appID string) *resiliency.Policy
	// Plaintext talks to the xDS server without TLS.
	Plaintext bool
}

// EnvoyBootstrap returns the bootstrap of an Envoy ingress (see
// EnvoyOptions), checked with the protos' ValidateAll. The apps' clusters
// are static in the bootstrap (type EDS, endpoints over ADS): the server's
// own clusters name certificate-provider instances, a gRPC feature Envoy
// does not implement, so Envoy does not take them over CDS. Certificates
// come from SDS files in Dir (EnvoySDSFiles), which Envoy reloads when
// `tandem identity` renames new files into Dir.
func EnvoyBootstrap(o EnvoyOptions) (*bootstrapv3.Bootstrap, error) {
	if o.Server == "" || o.Dir == "" || o.TrustDomain.IsZero() {
		return nil, errors.New("envoy bootstrap: the xDS server, the identity folder and the trust domain are required")
	}
	if len(o.Apps) == 0 {
		return nil, errors.New("envoy bootstrap: name at least one app for the ingress to expose")
	}
	if o.NodeID == "" {
		o.NodeID = "envoy-ingress"
	}
	if o.ListenAddress == "" {
		o.ListenAddress = "0.0.0.0"
	}
	if o.ListenPort == 0 {
		o.ListenPort = 10000
	}
	if o.AdminPort == 0 {
		o.AdminPort = 9901
	}
	if o.ServerNamespace == "" {
		o.ServerNamespace = identity.DefaultNamespace
	}
	host, port, err := splitHostPort(o.Server)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: xDS server %q: %w", o.Server, err)
	}
	serverID, err := identity.AppID(o.TrustDomain.Name(), o.ServerNamespace, XDSServerAppID)
	if err != nil {
		return nil, err
	}

	xdsCluster := &clusterv3.Cluster{
		Name:                 EnvoyXDSCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: EnvoyXDSCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
			}}}},
		},
		TypedExtensionProtocolOptions: http2Options(),
	}
	if !o.Plaintext {
		xdsCluster.TransportSocket = envoyTLS(o.Dir, serverID)
	}
	clusters := []*clusterv3.Cluster{xdsCluster}
	var vhosts []*routev3.VirtualHost
	for _, app := range o.Apps {
		if app.Namespace == "" {
			app.Namespace = identity.DefaultNamespace
		}
		id, err := identity.AppID(o.TrustDomain.Name(), app.Namespace, app.ID)
		if err != nil {
			return nil, fmt.Errorf("envoy bootstrap: app %q: %w", app.ID, err)
		}
		var pol *resiliency.Policy
		if o.Policy != nil {
			pol = o.Policy(app.ID)
		}
		name := ClusterName(app)
		clusters = append(clusters, &clusterv3.Cluster{
			Name:                          name,
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
			ConnectTimeout:                durationpb.New(5 * time.Second),
			TransportSocket:               envoyTLS(o.Dir, id),
			TypedExtensionProtocolOptions: http2Options(),
		})
		vhosts = append(vhosts, routeConfig(app, ListenerNames(app, identity.DefaultNamespace), pol).GetVirtualHosts()...)
	}
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: "ingress",
		// :authority "orders:10000" routes like "orders".
		StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "ingress", VirtualHosts: vhosts,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	b := &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: o.NodeID, Cluster: "tandem-ingress"},
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", o.AdminPort)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{{
				Name:    "ingress",
				Address: socketAddress(o.ListenAddress, o.ListenPort),
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
					Name:       "envoy.filters.network.http_connection_manager",
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
				}}}},
			}},
			Clusters: clusters,
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: EnvoyXDSCluster},
				}}},
			},
		},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return b, nil
}

// EnvoyBootstrapJSON is EnvoyBootstrap as JSON (envoy -c envoy.json).
func EnvoyBootstrapJSON(o EnvoyOptions) ([]byte, error) {
	b, err := EnvoyBootstrap(o)
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(b)
}

// EnvoySDSFiles returns, by file name, the SDS files of the identity folder
// dir: the SVID (cert.pem, key.pem) and the roots (ca.pem), each a
// DiscoveryResponse Envoy reads from the file and reloads on moves into
// dir.
func EnvoySDSFiles(dir string) (map[string][]byte, error) {
	watched := &corev3.WatchedDirectory{Path: dir}
	file := func(name string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: filepath.Join(dir, name)}}
	}
	secrets := map[string]*tlsv3.Secret{
		EnvoySVIDFile: {Name: EnvoySVIDSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: file("cert.pem"), PrivateKey: file("key.pem"), WatchedDirectory: watched,
		}}},
		EnvoyRootsFile: {Name: EnvoyRootsSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: file("ca.pem"), WatchedDirectory: watched,
		}}},
	}
	out := make(map[string][]byte, len(secrets))
	for name, s := range secrets {
		if err := s.ValidateAll(); err != nil {
			return nil, fmt.Errorf("envoy sds %s: %w", name, err)
		}
		a, err := anypb.New(s)
		if err != nil {
			return nil, err
		}
		resp := &discoveryv3.DiscoveryResponse{Resources: []*anypb.Any{a}}
		if err := resp.ValidateAll(); err != nil {
			return nil, fmt.Errorf("envoy sds %s: %w", name, err)
		}
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(resp)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
	return out, nil
}

// envoyTLS is an upstream mTLS socket whose certificate and roots come from
// the SDS files in dir and which accepts only peer's SPIFFE ID.
func envoyTLS(dir string, peer spiffeid.ID) *corev3.TransportSocket {
	sds := func(name, file string) *tlsv3.SdsSecretConfig {
		return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
			ResourceApiVersion: corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{
				Path: filepath.Join(dir, file), WatchedDirectory: &corev3.WatchedDirectory{Path: dir},
			}},
		}}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols:                  []string{"h2"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(EnvoySVIDSecret, EnvoySVIDFile)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: peer.String()}},
				}},
			},
			ValidationContextSdsSecretConfig: sds(EnvoyRootsSecret, EnvoyRootsFile),
		}},
	}}
	return &corev3.TransportSocket{
		Name:       "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

// http2Options makes a cluster speak HTTP/2 (gRPC) upstream.
func http2Options() map[string]*anypb.Any {
	return map[string]*anypb.Any{
		"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		}),
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol: corev3.SocketAddress_TCP, Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func splitHostPort(hostport string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	return host, uint32(port), nil
}
