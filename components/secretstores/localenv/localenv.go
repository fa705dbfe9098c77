// Package localenv is the secretstores.local.env secret store: secrets are
// the sidecar's environment variables (for development, as in Dapr).
//
// Metadata: prefix (optional) is prepended to secret names when reading
// variables, and stripped from names in bulk reads. APP_API_TOKEN and
// DAPR_* variables are never served.
//
// Unlike Dapr, which answers an empty value, an unset variable is
// secretstores.ErrNotFound, so a typo in a secretKeyRef is reported
// instead of silently becoming "".
package localenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
)

// Type is the component type.
const Type = "secretstores.local.env"

// Store is the environment variable secret store.
type Store struct {
	lookup  func(string) (string, bool)
	environ func() []string

	mu     sync.RWMutex
	prefix string
}

var _ secretstores.SecretStore = (*Store)(nil)

// New returns a store over the process environment.
func New() *Store { return NewWithEnv(os.LookupEnv, os.Environ) }

// NewWithEnv returns a store over another environment (for tests).
func NewWithEnv(lookup func(string) (string, bool), environ func() []string) *Store {
	return &Store{lookup: lookup, environ: environ}
}

// Init reads the prefix.
func (s *Store) Init(_ context.Context, md components.Metadata) error {
	s.mu.Lock()
	s.prefix = md.String("prefix", "")
	s.mu.Unlock()
	return nil
}

func (s *Store) getPrefix() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.prefix
}

// GetSecret returns {name: value of prefix+name}.
func (s *Store) GetSecret(_ context.Context, req secretstores.GetRequest) (map[string]string, error) {
	name := s.getPrefix() + req.Name
	if req.Name == "" || !allowed(name) {
		return nil, fmt.Errorf("%w: %q (APP_API_TOKEN and DAPR_* variables are never served)", secretstores.ErrNotFound, req.Name)
	}
	v, ok := s.lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: environment variable %q is not set", secretstores.ErrNotFound, name)
	}
	return map[string]string{req.Name: v}, nil
}

// BulkGetSecret returns every allowed variable starting with the prefix,
// named without it.
func (s *Store) BulkGetSecret(_ context.Context, _ secretstores.BulkGetRequest) (map[string]map[string]string, error) {
	prefix := s.getPrefix()
	out := map[string]map[string]string{}
	for _, kv := range s.environ() {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, prefix)
		if !ok || name == "" || !allowed(k) {
			continue
		}
		out[name] = map[string]string{name: v}
	}
	return out, nil
}

// Features: none.
func (s *Store) Features() []secretstores.Feature { return []secretstores.Feature{} }

// Close does nothing.
func (s *Store) Close() error { return nil }

// allowed is Dapr's deny list for environment secrets.
func allowed(name string) bool {
	up := strings.ToUpper(name)
	return up != "APP_API_TOKEN" && !strings.HasPrefix(up, "DAPR_")
}
