// Package builtin lists the secret store backends compiled into tandemd.
// Only cmd imports it.
package builtin

import (
	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/kubernetes"
	"github.com/tandemrun/tandem/components/secretstores/localenv"
	"github.com/tandemrun/tandem/components/secretstores/localfile"
	"github.com/tandemrun/tandem/components/secretstores/vault"
)

// Types lists the known spec.type values.
func Types() []string { return []string{vault.Type, kubernetes.Type, localenv.Type, localfile.Type} }

// New returns a fresh store for a spec.type.
func New(typ string) (secretstores.SecretStore, bool) {
	switch typ {
	case localfile.Type:
		return localfile.New(), true
	case localenv.Type:
		return localenv.New(), true
	case kubernetes.Type:
		return kubernetes.New(), true
	case vault.Type:
		return vault.New(), true
	}
	return nil, false
}

// Kind is the secret store kind with the built-in backends, for
// components.NewManager.
func Kind() components.Kind[secretstores.SecretStore] {
	return secretstores.Kind(New, Types())
}

// KubernetesStore is the secret store tandemd registers by itself in
// Kubernetes mode, as daprd does: "kubernetes", reading the Secrets of
// namespace (unless a request names another). Unlike a declared
// component, it does not stop the sidecar when it cannot start (no API
// access): the operator resolves secretKeyRef without it.
func KubernetesStore(namespace string) components.Component {
	return components.Component{
		APIVersion: components.APIVersionV1Alpha1, Name: kubernetes.BuiltinName, Type: kubernetes.Type, Version: "v1",
		Metadata:    []components.MetadataItem{{Name: "defaultNamespace", Value: namespace, HasValue: true}},
		InitTimeout: components.DefaultInitTimeout, IgnoreErrors: true, Source: "built-in (--mode kubernetes)",
	}
}

// KubernetesStoreName is the name of KubernetesStore, the store
// secretKeyRef uses in Kubernetes mode when auth.secretStore is empty.
const KubernetesStoreName = kubernetes.BuiltinName
