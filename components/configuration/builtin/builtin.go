// Package builtin lists the configuration stores compiled into the
// sidecar, by Dapr component type.
package builtin

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/components/configuration/postgresql"
	"github.com/tandemrun/tandem/components/configuration/redis"
)

// Factories returns a new map from Dapr component type to a constructor of
// an uninitialised store; log may be nil.
func Factories(log *slog.Logger) map[string]func() configuration.Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return map[string]func() configuration.Store{
		redis.Type:      func() configuration.Store { return redis.New(log.With("component_type", redis.Type)) },
		postgresql.Type: func() configuration.Store { return postgresql.New(log.With("component_type", postgresql.Type)) },
	}
}

// Kind is the configuration kind with the built-in stores.
func Kind(log *slog.Logger) components.Kind[configuration.Store] {
	f := Factories(log)
	return configuration.Kind(func(typ string) (configuration.Store, bool) {
		newS, ok := f[typ]
		if !ok {
			return nil, false
		}
		return newS(), true
	}, slices.Sorted(maps.Keys(f)))
}
