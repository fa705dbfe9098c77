// Package secretstores defines the secret store kind: the SecretStore
// interface its backends implement, the Kind a components.Manager runs
// them with, and Resolver, which resolves secretKeyRef entries of other
// components through the loaded stores.
//
// Backends live in sub-packages (localfile, localenv, kubernetes, vault)
// and import only this package and components; builtin lists them for
// cmd; secretstoretest is the contract suite every backend passes.
package secretstores

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandemrun/tandem/components"
)

// SecretStore reads secrets. A secret is a map of keys to values: most
// stores have one key per secret, named like the secret.
//
// Implementations must be safe for concurrent use after Init returns, and
// must never put secret values in errors or logs.
type SecretStore interface {
	// Init configures the store from its component metadata.
	Init(ctx context.Context, md components.Metadata) error
	// GetSecret returns one secret; an error wrapping ErrNotFound if the
	// store has no secret by that name.
	GetSecret(ctx context.Context, req GetRequest) (map[string]string, error)
	// BulkGetSecret returns every secret the store holds, by name.
	BulkGetSecret(ctx context.Context, req BulkGetRequest) (map[string]map[string]string, error)
	// Features lists optional capabilities for /v1.0/metadata.
	Features() []Feature
	// Close releases the store's resources.
	Close() error
}

// GetRequest asks for one secret. Metadata carries the request's
// metadata.* query parameters (e.g. version_id), passed to the store as is.
type GetRequest struct {
	Name     string
	Metadata map[string]string
}

// BulkGetRequest asks for all secrets.
type BulkGetRequest struct {
	Metadata map[string]string
}

// Feature is a capability, named as Dapr names it in /v1.0/metadata.
type Feature string

// FeatureMultipleKeyValuesPerSecret: a secret may hold several keys.
const FeatureMultipleKeyValuesPerSecret Feature = "MULTIPLE_KEY_VALUES_PER_SECRET"

// ErrNotFound is wrapped by GetSecret errors for a missing secret.
var ErrNotFound = errors.New("secret not found")

// NotFound is the GetSecret error for a missing secret name, in daprd's
// words ("secret NAME not found"); errors.Is(err, ErrNotFound) holds.
func NotFound(name string) error { return notFoundError(name) }

type notFoundError string

func (e notFoundError) Error() string { return fmt.Sprintf("secret %s not found", string(e)) }

func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// Category is the spec.type prefix of secret stores.
const Category = "secretstores"

// Kind describes secret stores to a components.Manager. newStore makes an
// instance for a spec.type (false if unknown); types lists the known ones.
func Kind(newStore func(typ string) (SecretStore, bool), types []string) components.Kind[SecretStore] {
	return components.Kind[SecretStore]{
		Category: Category,
		Types:    types,
		New:      newStore,
		Init: func(ctx context.Context, s SecretStore, md components.Metadata) error {
			return s.Init(ctx, md)
		},
		Close: func(s SecretStore) error { return s.Close() },
		Capabilities: func(s SecretStore) []string {
			fs := s.Features()
			out := make([]string, len(fs))
			for i, f := range fs {
				out[i] = string(f)
			}
			return out
		},
	}
}

// Resolver returns the function that resolves secretKeyRef entries of
// other components (components.Env.Secret) through the stores in reg. A
// store that is not ready yet yields a retryable error, so the component
// that needs the secret is retried until the store is up.
func Resolver(reg *components.Registry[SecretStore]) components.SecretFunc {
	return func(ctx context.Context, store, name, key string) (string, error) {
		s, release, err := reg.Acquire(store)
		if err != nil {
			return "", fmt.Errorf("secret store %q: %w", store, err)
		}
		defer release()
		data, err := s.GetSecret(ctx, GetRequest{Name: name})
		if err != nil {
			return "", err
		}
		v, ok := data[key]
		if !ok {
			return "", fmt.Errorf("%w: secret %q has no key %q", ErrNotFound, name, key)
		}
		return v, nil
	}
}
