package xds

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/resiliency"
)

// DefaultCertProvider is the certificate-provider instance name the
// clusters' TLS contexts use; the client's bootstrap must define it
// (certificate_providers.<name>, e.g. a file_watcher).
const DefaultCertProvider = "tandem"

// Defaults of BuildOptions.
const (
	DefaultMaxRequests = 1024
	// maxRetries caps Dapr's "retry forever" (maxRetries -1): gRPC clients
	// make at most 5 attempts anyway.
	maxRetries = 4
)

// BuildOptions shape the resources.
type BuildOptions struct {
	// TrustDomain of the sidecars' SPIFFE IDs (the SAN the client checks).
	TrustDomain spiffeid.TrustDomain
	// DefaultNamespace's apps also get a listener named by the bare app ID
	// ("default" if empty).
	DefaultNamespace string
	// CertProvider is the certificate-provider instance name
	// (DefaultCertProvider if empty).
	CertProvider string
	// Policy, if set, returns the Resiliency policy for calls to appID
	// (resiliency.Set.ForApp); nil or a nil result means none.
	Policy func(appID string) *resiliency.Policy
	// MaxRequests is the clusters' circuit_breakers max_requests (the most
	// concurrent requests per client and cluster); DefaultMaxRequests if 0.
	MaxRequests uint32
}

// ListenerNames are the names a client dials for app (xds:///<name>):
// "<id>.<namespace>", and the bare ID in the default namespace.
func ListenerNames(app App, defaultNamespace string) []string {
	names := []string{app.ID + "." + app.Namespace}
	if app.Namespace == defaultNamespace {
		names = append(names, app.ID)
	}
	return names
}

// ClusterName is the cluster (and EDS service) name of app.
func ClusterName(app App) string { return "cluster/" + app.ID + "." + app.Namespace }

// Build returns the snapshot of version for apps. Every resource passes its
// protoc-gen-validate rules and the snapshot passes the cache's
// consistency check, or Build returns an error saying which did not.
func Build(version string, apps []App, o BuildOptions) (*cachev3.Snapshot, error) {
	if o.TrustDomain.IsZero() {
		return nil, errors.New("xds: a trust domain is required (the SPIFFE IDs the clients check)")
	}
	if o.DefaultNamespace == "" {
		o.DefaultNamespace = identity.DefaultNamespace
	}
	if o.CertProvider == "" {
		o.CertProvider = DefaultCertProvider
	}
	if o.MaxRequests == 0 {
		o.MaxRequests = DefaultMaxRequests
	}
	var listeners, clusters, endpoints []types.Resource
	seen := map[string]bool{}
	for _, app := range apps {
		id, err := identity.AppID(o.TrustDomain.Name(), app.Namespace, app.ID)
		if err != nil {
			return nil, fmt.Errorf("xds: app %q in namespace %q: %w", app.ID, app.Namespace, err)
		}
		var pol *resiliency.Policy
		if o.Policy != nil {
			pol = o.Policy(app.ID)
		}
		names := ListenerNames(app, o.DefaultNamespace)
		for _, n := range names {
			if seen[n] {
				return nil, fmt.Errorf("xds: two apps want listener %q", n)
			}
			seen[n] = true
		}
		route := routeConfig(app, names, pol)
		for _, n := range names {
			l, err := listener(n, route)
			if err != nil {
				return nil, err
			}
			listeners = append(listeners, l)
		}
		c, err := cluster(app, id, pol, o)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
		endpoints = append(endpoints, loadAssignment(app))
	}
	for _, group := range [][]types.Resource{listeners, clusters, endpoints} {
		for _, r := range group {
			if v, ok := r.(interface{ ValidateAll() error }); ok {
				if err := v.ValidateAll(); err != nil {
					return nil, fmt.Errorf("xds: resource %q is invalid: %w", cachev3.GetResourceName(r), err)
				}
			}
		}
	}
	snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ListenerType: listeners,
		resource.ClusterType:  clusters,
		resource.EndpointType: endpoints,
	})
	if err != nil {
		return nil, fmt.Errorf("xds: snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("xds: snapshot %s is inconsistent: %w", version, err)
	}
	return snap, nil
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("xds: marshal %T: %v", m, err)) // only for programming errors
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// listener is an API listener (proxyless gRPC reads its HTTP connection
// manager directly). The route is inline rather than over RDS: one round
// trip less for the client, and go-control-plane's consistency check
// follows RDS references of filter chains only, not of API listeners.
func listener(name string, route *routev3.RouteConfiguration) (*listenerv3.Listener, error) {
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:      hcmv3.HttpConnectionManager_AUTO,
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: route},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)},
	}, nil
}

func routeConfig(app App, domains []string, pol *resiliency.Policy) *routev3.RouteConfiguration {
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterName(app)},
	}
	attempts := 1
	if r := retryPolicy(pol.Retry()); r != nil {
		action.RetryPolicy = r
		attempts += int(r.GetNumRetries().GetValue())
	}
	if t := pol.Timeout(); t > 0 {
		// Dapr's timeout bounds each attempt. Envoy has that
		// (per_try_timeout); proxyless gRPC only bounds the whole call
		// (max_stream_duration), so the call gets every attempt's worth.
		total := durationpb.New(t * time.Duration(attempts))
		action.Timeout = total
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: total}
		if action.RetryPolicy != nil {
			action.RetryPolicy.PerTryTimeout = durationpb.New(t)
		}
	}
	return &routev3.RouteConfiguration{
		Name: "route/" + app.ID + "." + app.Namespace,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    app.ID + "." + app.Namespace,
			Domains: domains,
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: ""}},
				Action: &routev3.Route_Route{Route: action},
			}},
		}},
	}
}

// grpcRetryOn are the retry_on conditions gRPC clients (and Envoy's gRPC
// retry) understand, by status code.
var grpcRetryOn = []struct {
	code int
	name string
}{
	{1, "cancelled"}, {4, "deadline-exceeded"}, {8, "resource-exhausted"}, {13, "internal"}, {14, "unavailable"},
}

// retryPolicy maps a Dapr retry policy; nil when none of the codes it
// retries has an xDS name.
func retryPolicy(r *resiliency.Retry) *routev3.RetryPolicy {
	if r == nil || r.MaxRetries == 0 {
		return nil
	}
	var on []string
	for _, c := range grpcRetryOn {
		if r.Matching.GRPC == nil || inRanges(c.code, r.Matching.GRPC) {
			on = append(on, c.name)
		}
	}
	if len(on) == 0 {
		return nil
	}
	n := r.MaxRetries
	if n < 0 || n > maxRetries {
		n = maxRetries
	}
	base, maxI := r.Duration, r.Duration
	if r.Policy == resiliency.Exponential {
		base, maxI = 500*time.Millisecond, r.MaxInterval
	}
	base = max(base, time.Millisecond)
	maxI = max(maxI, base)
	return &routev3.RetryPolicy{
		RetryOn:      strings.Join(on, ","),
		NumRetries:   wrapperspb.UInt32(uint32(n)),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(base), MaxInterval: durationpb.New(maxI)},
	}
}

func inRanges(code int, rs []resiliency.CodeRange) bool {
	for _, r := range rs {
		if r.Lo <= code && code <= r.Hi {
			return true
		}
	}
	return false
}

func cluster(app App, id spiffeid.ID, pol *resiliency.Policy, o BuildOptions) (*clusterv3.Cluster, error) {
	name := ClusterName(app)
	provider := func(cert string) *tlsv3.CertificateProviderPluginInstance {
		return &tlsv3.CertificateProviderPluginInstance{InstanceName: o.CertProvider, CertificateName: cert}
	}
	tlsCtx := &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: provider("default"),
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: provider("ROOTCA"),
				// gRPC reads match_subject_alt_names only; Envoy still
				// honours it.
				MatchSubjectAltNames: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id.String()}}}, //lint:ignore SA1019 gRPC reads only this field
			}},
		},
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		TransportSocket: &corev3.TransportSocket{
			Name:       "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(tlsCtx)},
		},
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:    corev3.RoutingPriority_DEFAULT,
			MaxRequests: wrapperspb.UInt32(o.MaxRequests),
		}}},
	}
	if cb := pol.Breaker(); cb != nil {
		c.OutlierDetection = outlierDetection(cb)
	}
	return c, nil
}

var consecutiveTrip = regexp.MustCompile(`^\s*consecutiveFailures\s*(>=|>)\s*(\d+)\s*$`)

// ConsecutiveFailures is the number of consecutive failures after which
// trip opens a breaker, when trip has the form "consecutiveFailures > N"
// (or >=); 0 otherwise.
func ConsecutiveFailures(trip string) uint32 {
	m := consecutiveTrip.FindStringSubmatch(trip)
	if m == nil {
		return 0
	}
	n, err := strconv.ParseUint(m[2], 10, 31)
	if err != nil {
		return 0
	}
	if m[1] == ">" {
		n++
	}
	return uint32(max(n, 1))
}

// outlierDetection maps a Dapr circuit breaker, which Tandem's own
// resolver applies per sidecar address, to per-host ejection: the trip's
// consecutive failures eject the host (Envoy: consecutive_5xx and gateway
// failures; proxyless gRPC: the failure-percentage algorithm, which needs
// that many requests), for the breaker's open timeout.
func outlierDetection(cb *resiliency.CircuitBreaker) *clusterv3.OutlierDetection {
	n := uint32(5)
	if cb.Trip != nil {
		if c := ConsecutiveFailures(cb.Trip.String()); c > 0 {
			n = c
		}
	}
	interval := cb.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    wrapperspb.UInt32(n),
		ConsecutiveGatewayFailure:          wrapperspb.UInt32(n),
		EnforcingConsecutive_5Xx:           wrapperspb.UInt32(100),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
		Interval:                           durationpb.New(interval),
		BaseEjectionTime:                   durationpb.New(cb.Timeout),
		MaxEjectionTime:                    durationpb.New(max(cb.Timeout, 300*time.Second)),
		MaxEjectionPercent:                 wrapperspb.UInt32(100),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		FailurePercentageThreshold:         wrapperspb.UInt32(50),
		EnforcingFailurePercentage:         wrapperspb.UInt32(100),
		FailurePercentageMinimumHosts:      wrapperspb.UInt32(1),
		FailurePercentageRequestVolume:     wrapperspb.UInt32(n),
	}
}

func loadAssignment(app App) *endpointv3.ClusterLoadAssignment {
	lb := make([]*endpointv3.LbEndpoint, 0, len(app.Endpoints))
	for _, e := range app.Endpoints {
		lb = append(lb, &endpointv3.LbEndpoint{
			HealthStatus: healthStatus(e.Health),
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       e.Host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.Port},
				}}},
			}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: ClusterName(app),
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         lb,
		}},
	}
}

func healthStatus(h Health) corev3.HealthStatus {
	switch h {
	case Draining:
		return corev3.HealthStatus_DRAINING
	case Unhealthy:
		return corev3.HealthStatus_UNHEALTHY
	}
	return corev3.HealthStatus_HEALTHY
}
