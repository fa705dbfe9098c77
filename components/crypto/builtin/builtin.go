// Package builtin lists the crypto components compiled into the sidecar,
// by Dapr component type. cmd/tandemd builds the list once and passes it
// to the component loader.
package builtin

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
	"github.com/tandemrun/tandem/components/crypto/jwks"
	"github.com/tandemrun/tandem/components/crypto/localstorage"
)

// Factories returns a new map from Dapr component type to a constructor of
// an uninitialised key store.
func Factories(log *slog.Logger) map[string]func() crypto.KeyStore {
	return map[string]func() crypto.KeyStore{
		localstorage.Type: func() crypto.KeyStore { return localstorage.New() },
		jwks.Type:         func() crypto.KeyStore { return jwks.New(log) },
	}
}

// Kind is the crypto kind with the built-in stores, for
// components.NewManager.
func Kind(log *slog.Logger) components.Kind[crypto.KeyStore] {
	f := Factories(log)
	return crypto.Kind(func(typ string) (crypto.KeyStore, bool) {
		newS, ok := f[typ]
		if !ok {
			return nil, false
		}
		return newS(), true
	}, slices.Sorted(maps.Keys(f)))
}
