// Package kubernetes is the secretstores.kubernetes secret store: secrets
// are the Kubernetes Secrets of a namespace, read through the API server
// with the pod's service account. In Kubernetes mode tandemd registers one
// named "kubernetes" by itself (unless --disable-builtin-k8s-secret-store),
// as daprd does; it can also be declared as a component.
//
// As in Dapr, a secret is all the keys of one Secret, and a bulk read
// returns every Secret of the namespace. The namespace is the request's
// metadata.namespace, else the NAMESPACE environment variable, else the
// component's defaultNamespace.
//
// Metadata:
//
//	defaultNamespace: shop      # used when neither of the above is set
//	kubeconfigPath: /path       # API access (default: in-cluster, $KUBECONFIG, ~/.kube/config)
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/internal/kubeclient"
	"github.com/tandemrun/tandem/internal/kubecore"
)

// Type is the component type.
const Type = "secretstores.kubernetes"

// BuiltinName is the name of the store tandemd registers in Kubernetes
// mode, and the store secretKeyRef uses there when auth.secretStore is
// empty.
const BuiltinName = "kubernetes"

// Store reads Kubernetes Secrets.
type Store struct {
	getenv func(string) string

	mu        sync.RWMutex
	client    *kubecore.Client
	defaultNS string
}

var _ secretstores.SecretStore = (*Store)(nil)

// New returns a store that finds its API access in Init.
func New() *Store { return &Store{getenv: os.Getenv} }

// NewWithClient returns a store over a given API client (Init then only
// reads the metadata), reading NAMESPACE through getenv.
func NewWithClient(client *kubecore.Client, getenv func(string) string) *Store {
	return &Store{client: client, getenv: getenv}
}

// Init reads the metadata and builds the API client.
func (s *Store) Init(_ context.Context, md components.Metadata) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultNS = md.String("defaultNamespace", "")
	if s.client != nil {
		return nil
	}
	rc, _, err := kubeclient.Config(md.String("kubeconfigPath", ""))
	if err != nil {
		return components.Permanent(fmt.Errorf("kubernetes secret store %q: %w", md.Name, err))
	}
	if s.client, err = kubecore.New(rc); err != nil {
		return components.Permanent(fmt.Errorf("kubernetes secret store %q: %w", md.Name, err))
	}
	return nil
}

// namespace picks the namespace of a request, as Dapr does.
func (s *Store) namespace(md map[string]string) (string, *kubecore.Client, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ns := md["namespace"]
	if ns == "" {
		ns = s.getenv("NAMESPACE")
	}
	if ns == "" {
		ns = s.defaultNS
	}
	if ns == "" {
		return "", nil, errors.New("namespace is missing on metadata and NAMESPACE env variable, and no default namespace is set")
	}
	if s.client == nil {
		return "", nil, errors.New("kubernetes secret store is not initialised")
	}
	return ns, s.client, nil
}

// GetSecret returns every key of the Secret req.Name.
func (s *Store) GetSecret(ctx context.Context, req secretstores.GetRequest) (map[string]string, error) {
	ns, client, err := s.namespace(req.Metadata)
	if err != nil {
		return nil, err
	}
	sec, err := client.Secret(ctx, ns, req.Name)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w (no Secret %q in namespace %q)", secretstores.NotFound(req.Name), req.Name, ns)
	case err != nil:
		return nil, explain(err, "get", ns)
	}
	out := make(map[string]string, len(sec.Data))
	for k, v := range sec.Data {
		out[k] = string(v)
	}
	return out, nil
}

// BulkGetSecret returns every Secret of the namespace.
func (s *Store) BulkGetSecret(ctx context.Context, req secretstores.BulkGetRequest) (map[string]map[string]string, error) {
	ns, client, err := s.namespace(req.Metadata)
	if err != nil {
		return nil, err
	}
	list, err := client.Secrets(ctx, ns, metav1.ListOptions{})
	if err != nil {
		return nil, explain(err, "list", ns)
	}
	out := make(map[string]map[string]string, len(list.Items))
	for _, sec := range list.Items {
		m := make(map[string]string, len(sec.Data))
		for k, v := range sec.Data {
			m[k] = string(v)
		}
		out[sec.Name] = m
	}
	return out, nil
}

// explain adds what to do to a refusal of the API server.
func explain(err error, verb, ns string) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w; grant the pod's service account %q on secrets in namespace %q with a Role, or start the sidecar with --disable-builtin-k8s-secret-store", err, verb, ns)
	}
	return err
}

// Features: none, as Dapr's store reports.
func (s *Store) Features() []secretstores.Feature { return nil }

// Close does nothing: the client holds no connection of its own.
func (s *Store) Close() error { return nil }
