// Package api gathers the operator's typed API: the dapr.io kinds
// (v1alpha1, v2alpha1) and the scheme that reads them alongside
// Kubernetes' own kinds.
package api

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
	"github.com/tandemrun/tandem/operator/api/v2alpha1"
)

// NewScheme returns a scheme with Kubernetes' built-in kinds and Dapr's
// dapr.io kinds.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, v2alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
