// Package k8s holds the end-to-end tests of Tandem on Kubernetes: the
// control plane from the plain manifests and annotated pods run as local
// processes by cluster.Node (no kubelet), against a real API server.
package k8s
