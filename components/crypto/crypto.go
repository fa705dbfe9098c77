// Package crypto defines the cryptography building block (Dapr's crypto.*
// components, API v1.0-alpha1): the KeyStore interface its backends
// implement, the Key they return, the operations daprd's local crypto
// components perform with a key (Encrypt, Decrypt, WrapKey, UnwrapKey,
// Sign, Verify: the "subtle" API), and the Kind a components.Manager runs
// them with.
//
// A backend only finds keys; the operations are written once here, as
// components-contrib's LocalCryptoBaseComponent does for daprd. The
// streaming format the encrypt/decrypt API writes is in encv1.
//
// Backends live in sub-packages and import only this package and
// components; builtin lists them for cmd.
package crypto

import (
	"context"
	"errors"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of crypto components.
const Category = "crypto"

// ErrKeyNotFound is a key the store does not have (or, from PublicKey, a
// symmetric key, which is never disclosed).
var ErrKeyNotFound = errors.New("key not found")

// KeyStore is a crypto component: it finds keys by name. Implementations
// must be safe for concurrent use after Init returns.
type KeyStore interface {
	Init(ctx context.Context, md components.Metadata) error
	// Key returns the key named name; ErrKeyNotFound if there is none.
	Key(ctx context.Context, name string) (*Key, error)
	Close() error
}

// Kind describes crypto components to a components.Manager. newStore
// makes an uninitialised store for a spec.type (false if unknown); types
// lists the known ones.
func Kind(newStore func(typ string) (KeyStore, bool), types []string) components.Kind[KeyStore] {
	return components.Kind[KeyStore]{
		Category: Category,
		Types:    types,
		New:      newStore,
		Init:     func(ctx context.Context, s KeyStore, md components.Metadata) error { return s.Init(ctx, md) },
		Close:    func(s KeyStore) error { return s.Close() },
	}
}
