// Package kubeclient finds the API server a sidecar's Kubernetes-backed
// parts (name resolution, the kubernetes secret store) talk to, the way
// Dapr's components do.
package kubeclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config returns API access and says where it came from: the kubeconfig
// file given, else the pod's service account (in-cluster), else
// $KUBECONFIG, else ~/.kube/config.
func Config(kubeconfig string) (*rest.Config, string, error) {
	if kubeconfig != "" {
		return fromFile(kubeconfig)
	}
	if rc, err := rest.InClusterConfig(); err == nil {
		return rc, "in-cluster service account", nil
	}
	if p := os.Getenv("KUBECONFIG"); p != "" {
		return fromFile(p)
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(p); err == nil {
			return fromFile(p)
		}
	}
	return nil, "", errors.New("no Kubernetes API access: not in a pod (KUBERNETES_SERVICE_HOST unset), and no kubeconfig ($KUBECONFIG, ~/.kube/config)")
}

func fromFile(path string) (*rest.Config, string, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return rc, path, nil
}
