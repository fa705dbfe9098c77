// Package lock defines the distributed lock building block (Dapr's
// lock.* components, API v1.0-alpha1): the Store interface its backends
// implement, the Kind a components.Manager runs them with, and the key
// layout every backend shares (KeyOf: "lock||<prefix>||<resourceId>", the
// prefix chosen by the component's keyPrefix metadata as in daprd).
//
// Backends live in sub-packages and import only this package and
// components; builtin lists them for cmd; locktest is the contract suite
// every backend passes.
package lock

import (
	"context"
	"fmt"
	"strings"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of lock components.
const Category = "lock"

// UnlockStatus is the outcome of Unlock, numbered as Dapr's
// UnlockResponse.Status.
type UnlockStatus int32

// Unlock outcomes.
const (
	Success            UnlockStatus = 0
	LockDoesNotExist   UnlockStatus = 1
	LockBelongsToOther UnlockStatus = 2
	InternalError      UnlockStatus = 3
)

// Store is a distributed lock backend. Implementations must be safe for
// concurrent use after Init returns.
type Store interface {
	Init(ctx context.Context, md components.Metadata) error
	// TryLock takes the lock on key for owner for expiry seconds, unless
	// someone holds it; it reports whether it did.
	TryLock(ctx context.Context, key, owner string, expirySeconds int32) (bool, error)
	// Unlock releases owner's lock on key.
	Unlock(ctx context.Context, key, owner string) (UnlockStatus, error)
	Close() error
}

const separator = "||"

// Prefix is a lock store's key prefix strategy (keyPrefix metadata):
// "appid" (default), "name", "none" or a literal prefix.
type Prefix string

// PrefixOf reads the keyPrefix metadata; a value containing "||" is an
// error, as in daprd.
func PrefixOf(md components.Metadata) (Prefix, error) {
	p := strings.ToLower(md.String("keyPrefix", "appid"))
	if strings.Contains(p, separator) {
		return "", fmt.Errorf("component %q: metadata %q: input key/keyPrefix '%s' can't contain '%s'", md.Name, "keyPrefix", p, separator)
	}
	return Prefix(p), nil
}

// KeyOf is the backend key of resourceID in store for appID, daprd's
// layout; a resource ID containing "||" is an error.
func (p Prefix) KeyOf(resourceID, store, appID string) (string, error) {
	if strings.Contains(resourceID, separator) {
		return "", fmt.Errorf("input key/keyPrefix '%s' can't contain '%s'", resourceID, separator)
	}
	switch p {
	case "none":
		return "lock" + separator + resourceID, nil
	case "name":
		return "lock" + separator + store + separator + resourceID, nil
	case "appid", "":
		if appID == "" {
			return "lock" + separator + resourceID, nil
		}
		return "lock" + separator + appID + separator + resourceID, nil
	}
	return "lock" + separator + string(p) + separator + resourceID, nil
}

// Instance is an initialised lock store with its key prefix.
type Instance struct {
	Store  Store
	Prefix Prefix
}

// Kind describes lock stores to a components.Manager. newStore makes an
// uninitialised backend for a spec.type (false if unknown); types lists
// the known ones.
func Kind(newStore func(typ string) (Store, bool), types []string) components.Kind[*Instance] {
	return components.Kind[*Instance]{
		Category: Category,
		Types:    types,
		New: func(typ string) (*Instance, bool) {
			s, ok := newStore(typ)
			if !ok {
				return nil, false
			}
			return &Instance{Store: s}, true
		},
		Init: func(ctx context.Context, inst *Instance, md components.Metadata) error {
			p, err := PrefixOf(md)
			if err != nil {
				return components.Permanent(err)
			}
			inst.Prefix = p
			return inst.Store.Init(ctx, md)
		},
		Close: func(inst *Instance) error { return inst.Store.Close() },
	}
}
