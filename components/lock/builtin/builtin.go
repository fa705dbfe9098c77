// Package builtin lists the lock stores compiled into the sidecar, by Dapr
// component type. cmd/tandemd builds the list once and passes it to the
// component loader.
package builtin

import (
	"maps"
	"slices"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
	"github.com/tandemrun/tandem/components/lock/redis"
)

// Factories returns a new map from Dapr component type to a constructor of
// an uninitialised store.
func Factories() map[string]func() lock.Store {
	return map[string]func() lock.Store{
		redis.Type: func() lock.Store { return redis.New() },
	}
}

// Kind is the lock kind with the built-in stores, for
// components.NewManager.
func Kind() components.Kind[*lock.Instance] {
	f := Factories()
	return lock.Kind(func(typ string) (lock.Store, bool) {
		newS, ok := f[typ]
		if !ok {
			return nil, false
		}
		return newS(), true
	}, slices.Sorted(maps.Keys(f)))
}
