package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// SecretsConfig is what the secrets API serves with.
type SecretsConfig struct {
	// Registry holds the secret store instances by component name.
	Registry *components.Registry[secretstores.SecretStore]
	// Allowed applies the Configuration's secrets.scopes
	// (config.Configuration.SecretAllowed); nil allows everything.
	Allowed func(store, key string) bool
	// Log receives failures at debug level (never secret values); nil
	// discards them.
	Log *slog.Logger
}

// Secrets is the secrets API. It is safe for concurrent use.
type Secrets struct {
	cfg SecretsConfig
	log *slog.Logger
}

// NewSecrets returns the secrets API for cfg.
func NewSecrets(cfg SecretsConfig) *Secrets {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[secretstores.SecretStore]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Secrets{cfg: cfg, log: log}
}

func (s *Secrets) allowed(store, key string) bool {
	return s.cfg.Allowed == nil || s.cfg.Allowed(store, key)
}

// acquire takes a ready store for the length of a call, with daprd's
// errors for a missing one.
func (s *Secrets) acquire(name string) (secretstores.SecretStore, func(), error) {
	st, release, err := s.cfg.Registry.Acquire(name)
	if err == nil {
		return st, release, nil
	}
	s.log.Debug("secret store unavailable", "store", name, "error", err)
	var nr *components.NotReadyError
	switch {
	case errors.As(err, &nr):
		return nil, nil, apierr.SecretStoreNotReady(name, err)
	case len(s.cfg.Registry.Names()) == 0:
		return nil, nil, apierr.SecretStoresNotConfigured()
	default:
		return nil, nil, apierr.SecretStoreNotFound(name)
	}
}

// Get returns one secret's keys and values; nil (no error) when the store
// answered nothing. A secret denied by secrets.scopes is 403 before the
// store is asked.
func (s *Secrets) Get(ctx context.Context, store, key string, md map[string]string) (map[string]string, error) {
	st, release, err := s.acquire(store)
	if err != nil {
		return nil, err
	}
	defer release()
	if !s.allowed(store, key) {
		s.log.Debug("secret denied by secrets.scopes", "store", store, "secret", key)
		return nil, apierr.SecretPermissionDenied(key, store)
	}
	data, err := st.GetSecret(ctx, secretstores.GetRequest{Name: key, Metadata: md})
	if err != nil {
		s.log.Debug("get secret failed", "store", store, "secret", key, "error", err)
		return nil, apierr.SecretGet(key, store, err)
	}
	return data, nil
}

// BulkGet returns every secret of a store that secrets.scopes allows, by
// name; nil when the store answered nothing.
func (s *Secrets) BulkGet(ctx context.Context, store string, md map[string]string) (map[string]map[string]string, error) {
	st, release, err := s.acquire(store)
	if err != nil {
		return nil, err
	}
	defer release()
	all, err := st.BulkGetSecret(ctx, secretstores.BulkGetRequest{Metadata: md})
	if err != nil {
		s.log.Debug("bulk get secrets failed", "store", store, "error", err)
		return nil, apierr.SecretBulkGet(store, err)
	}
	if all == nil {
		return nil, nil
	}
	out := make(map[string]map[string]string, len(all))
	for name, v := range all {
		if s.allowed(store, name) {
			out[name] = v
		}
	}
	return out, nil
}
