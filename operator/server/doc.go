// Package server serves the dapr.io resources to sidecars over Dapr's
// operator protocol (dapr.proto.operator.v1.Operator), so tandemd and a
// real daprd can both load their components, configuration, resiliency,
// subscriptions and HTTP endpoints from it.
//
// The caller is the SPIFFE ID in its mTLS certificate, never a request
// field: a sidecar may only ask for its own namespace, and it gets only the
// resources whose scopes are empty or name its app ID. secretKeyRefs of
// components and HTTP endpoints whose secret store is Kubernetes (or unset)
// are resolved from the namespace's Secrets, base64-encoded as Dapr's
// operator does (daprd decodes them).
//
// Lists are read from controller-runtime's cache; the update streams get
// the cache's informer events through a hub that fans them out to every
// connected sidecar of the namespace. A sidecar that cannot keep up is cut
// off, and reconnects and lists again, rather than slowing the others.
package server
