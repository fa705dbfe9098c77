// Package xds is Tandem's xDS control plane: it serves, over ADS (state of
// the world and delta, from go-control-plane's snapshot cache), the
// resources a proxyless gRPC client (or an Envoy) needs to call an app's
// sidecars directly, with the sidecars' SPIFFE identities:
//
//   - per app ID a Listener whose name is the dial target (xds:///orders,
//     and orders.<namespace>), an API listener with an HTTP connection
//     manager that takes its route over ADS;
//   - a RouteConfiguration routing every call to the app's cluster, with the
//     Resiliency timeout and retry policy;
//   - a Cluster (EDS over ADS) whose UpstreamTlsContext takes the client's
//     certificate and roots from certificate-provider instances and accepts
//     only the callee's SPIFFE ID, with outlier detection and circuit
//     breakers from the Resiliency circuit breaker;
//   - a ClusterLoadAssignment with the app's sidecars and their health.
//
// A Source (sqlitesource for self-hosted, kubesource for Kubernetes) says
// which sidecars exist and pushes a signal when that changes; Server
// rebuilds the snapshot, checks it (Validate on every resource, and the
// cache's consistency check) and hands it to every connected client. A
// client's NACK is logged with its reason; the cache keeps serving the last
// good version.
//
// The package is control plane: it imports identity and resiliency, never
// the sidecar's packages.
package xds
