package server

import (
	"context"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
)

// kubernetesSecretStore is the built-in secret store a resource uses when
// its auth.secretStore is empty or names it.
const kubernetesSecretStore = "kubernetes"

// secretResolver reads the Secrets of one namespace, each at most once per
// resource.
type secretResolver struct {
	reader    client.Reader
	namespace string
	cache     map[string]*corev1.Secret
}

func newSecretResolver(r client.Reader, namespace string) *secretResolver {
	return &secretResolver{reader: r, namespace: namespace, cache: map[string]*corev1.Secret{}}
}

// value returns the referenced key as Dapr's operator sends it: a JSON
// string holding the base64 of the secret's bytes (daprd decodes it). A key
// the Secret lacks leaves the value as it is (ok false), as in Dapr.
func (s *secretResolver) value(ctx context.Context, ref v1alpha1.SecretKeyRef) (v1alpha1.RawJSON, bool, error) {
	sec, err := s.secret(ctx, ref.Name)
	if err != nil {
		return nil, false, fmt.Errorf("secret %s/%s: %w", s.namespace, ref.Name, err)
	}
	key := ref.Key
	if key == "" {
		key = ref.Name
	}
	data, ok := sec.Data[key]
	if !ok {
		return nil, false, nil
	}
	return v1alpha1.JSONString(base64.StdEncoding.EncodeToString(data)), true, nil
}

// secret reads the named Secret once.
func (s *secretResolver) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if sec, ok := s.cache[name]; ok {
		return sec, nil
	}
	sec, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	s.cache[name] = sec
	return sec, nil
}

// get reads one Secret. Where the API server does not serve it by name
// (404), it is looked for in a list selected by name, as Dapr's operator
// finds Secrets in its cluster-wide informer (its ClusterRole may list
// them); a list that fails or lacks it leaves the first answer.
func (s *secretResolver) get(ctx context.Context, name string) (*corev1.Secret, error) {
	sec := &corev1.Secret{}
	err := s.reader.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, sec)
	if err == nil || !apierrors.IsNotFound(err) {
		return sec, err
	}
	var list corev1.SecretList
	if lerr := s.reader.List(ctx, &list, client.MatchingFields{"metadata.name": name, "metadata.namespace": s.namespace}); lerr != nil {
		return nil, err
	}
	for i := range list.Items {
		if it := &list.Items[i]; it.Name == name && it.Namespace == s.namespace {
			return it, nil
		}
	}
	return nil, err
}

func usesKubernetesStore(a v1alpha1.Auth) bool {
	return a.SecretStore == "" || a.SecretStore == kubernetesSecretStore
}

// resolvePairs fills the values of pairs that reference a secret.
func (s *secretResolver) resolvePairs(ctx context.Context, pairs []v1alpha1.NameValuePair) error {
	for i, p := range pairs {
		if p.SecretKeyRef.Name == "" {
			continue
		}
		v, ok, err := s.value(ctx, p.SecretKeyRef)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		if ok {
			pairs[i].Value = v
		}
	}
	return nil
}

// resolveComponent fills c's secretKeyRef metadata in place (c must be a
// copy).
func resolveComponent(ctx context.Context, r client.Reader, c *v1alpha1.Component) error {
	if !usesKubernetesStore(c.Auth) {
		return nil
	}
	if err := newSecretResolver(r, c.Namespace).resolvePairs(ctx, c.Spec.Metadata); err != nil {
		return fmt.Errorf("component %s/%s metadata %w", c.Namespace, c.Name, err)
	}
	return nil
}

// resolveHTTPEndpoint fills h's secret headers and client TLS documents in
// place (h must be a copy).
func resolveHTTPEndpoint(ctx context.Context, r client.Reader, h *v1alpha1.HTTPEndpoint) error {
	if !usesKubernetesStore(h.Auth) {
		return nil
	}
	s := newSecretResolver(r, h.Namespace)
	if err := s.resolvePairs(ctx, h.Spec.Headers); err != nil {
		return fmt.Errorf("http endpoint %s/%s header %w", h.Namespace, h.Name, err)
	}
	if t := h.Spec.ClientTLS; t != nil {
		for _, doc := range []*v1alpha1.TLSDocument{t.RootCA, t.Certificate, t.PrivateKey} {
			if doc == nil || doc.SecretKeyRef == nil || doc.SecretKeyRef.Name == "" {
				continue
			}
			v, ok, err := s.value(ctx, *doc.SecretKeyRef)
			if err != nil {
				return fmt.Errorf("http endpoint %s/%s client TLS: %w", h.Namespace, h.Name, err)
			}
			if ok {
				doc.Value = v
			}
		}
	}
	return nil
}
