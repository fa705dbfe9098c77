// Package kube is sentry's Kubernetes side (--mode kubernetes): the issuer
// credentials kept in a Secret in Dapr's dapr-trust-bundle layout (ca.crt,
// issuer.crt, issuer.key; generated on first start), reloaded when the
// Secret changes, and the trust anchors published as a ConfigMap
// (dapr-trust-bundle, key ca.crt) in every namespace that runs annotated
// pods. The injector mounts that ConfigMap as a file, and sidecars watch
// the file, so a root rotation reaches running pods without a restart.
// With JWT SVIDs on, the Secret also holds jwt.key and jwks.json, and the
// ConfigMaps carry jwks.json.
package kube
