// Package v1alpha1 is the typed Go API of Dapr's dapr.io/v1alpha1 resources:
// Component, Configuration, Resiliency, Subscription and HTTPEndpoint, as
// the CRDs in deploy/helm/tandem/crds define them.
//
// The operator reads them through controller-runtime (AddToScheme) and
// serves them to sidecars as JSON, so the field names are Dapr's. Parts the
// operator never interprets (a Configuration's spec, a Resiliency's policies
// and targets) are kept as RawJSON, so every field the API server stored
// reaches the sidecar unchanged.
package v1alpha1
