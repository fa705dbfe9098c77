// Package cluster runs Tandem's control plane on a real Kubernetes API
// server (envtest: etcd and kube-apiserver, no kubelet) the way a cluster
// runs it: the plain manifests (deploy/manifests/tandem.yaml, rendered from
// the chart) are applied, and a Node plays the kubelet. It creates the
// control plane's pods from the Deployments' templates and runs each
// container as a local process with the command, args and env of the pod
// spec the API server holds, its volumes made as the kubelet makes them
// (ConfigMaps and Secrets kept in step, projected service account tokens
// from the TokenRequest API), and a kubeconfig holding a token of the pod's
// ServiceAccount, so the chart's RBAC is what the binaries get.
//
// What a node cannot share with a real cluster is the network: every pod
// is on 127.0.0.1, so each container's ports are moved to free ones (the
// flags are appended: a later flag wins), and the Service names of sentry
// and the operator are replaced by their loopback addresses. The API
// server refuses loopback addresses in EndpointSlices, so the injector's
// webhook listens on the machine's own IPv4 address (NodeIP), which an
// EndpointSlice of its Service holds; kube-apiserver
// --enable-aggregator-routing (APIServerFlags) makes the API server call
// the webhook there, checking sentry's certificate for the Service's name.
package cluster

// APIServerFlags are the kube-apiserver flags a Node needs (for kubetest.Options).
var APIServerFlags = map[string]string{"enable-aggregator-routing": "true"}
