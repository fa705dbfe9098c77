// Package client is what a sidecar in Kubernetes mode uses to read its
// resources from the operator (Dapr's dapr.proto.operator.v1.Operator
// service, Tandem's or Dapr's): Components, Subscriptions, Resiliency,
// HTTPEndpoints, MCPServers and its Configuration, listed once and then
// followed through the operator's update streams.
//
// The connection is mutual TLS with the sidecar's SVID (identity.Source);
// the operator must present
// spiffe://<control-plane-trust-domain>/ns/<control-plane-namespace>/dapr-operator,
// exactly what daprd checks. Resources arrive as JSON; Resource.JSON is
// each one in the shape of a resource file (kind and apiVersion filled in,
// Kubernetes' empty fields dropped) so the sidecar parses it as it parses
// its resource folders.
//
// Start-up reads (List, Configuration) retry as daprd does and then give
// up; Follow never gives up: a stream that breaks is opened again with
// backoff and the kind listed again, so an operator that restarts or is
// down for a while never stops the sidecar.
//
// It uses identity, never the sidecar's packages.
package client
