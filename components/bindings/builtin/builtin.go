// Package builtin lists the bindings compiled into the sidecar, by Dapr
// component type (spec.type of a Component resource). cmd/tandemd builds
// the list once and passes it to the component loader.
package builtin

import (
	"log/slog"
	"maps"
	"slices"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/cron"
	bindhttp "github.com/tandemrun/tandem/components/bindings/http"
	"github.com/tandemrun/tandem/components/bindings/kafka"
	"github.com/tandemrun/tandem/components/bindings/localstorage"
	"github.com/tandemrun/tandem/components/bindings/mqtt3"
	"github.com/tandemrun/tandem/components/bindings/postgresql"
	"github.com/tandemrun/tandem/components/bindings/rabbitmq"
	"github.com/tandemrun/tandem/components/bindings/redis"
	"github.com/tandemrun/tandem/components/bindings/wasm"
)

// Factories returns a new map from Dapr component type ("bindings.cron",
// ...) to a constructor of an uninitialised binding that logs to log (with
// a component_type key). log may be nil.
func Factories(log *slog.Logger) map[string]func() bindings.Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	with := func(typ string) *slog.Logger { return log.With("component_type", typ) }
	return map[string]func() bindings.Binding{
		cron.Type:         func() bindings.Binding { return cron.New(with(cron.Type)) },
		bindhttp.Type:     func() bindings.Binding { return bindhttp.New(with(bindhttp.Type)) },
		localstorage.Type: func() bindings.Binding { return localstorage.New() },
		postgresql.Type:   func() bindings.Binding { return postgresql.New() },
		redis.Type:        func() bindings.Binding { return redis.New() },
		rabbitmq.Type:     func() bindings.Binding { return rabbitmq.New(with(rabbitmq.Type)) },
		kafka.Type:        func() bindings.Binding { return kafka.New(with(kafka.Type)) },
		mqtt3.Type:        func() bindings.Binding { return mqtt3.New(with(mqtt3.Type)) },
		wasm.Type:         func() bindings.Binding { return wasm.New() },
	}
}

// New returns a constructor of the built-in bindings by type (false for
// an unknown type) and the known types, sorted.
func New(log *slog.Logger) (func(typ string) (bindings.Binding, bool), []string) {
	f := Factories(log)
	types := slices.Sorted(maps.Keys(f))
	return func(typ string) (bindings.Binding, bool) {
		newB, ok := f[typ]
		if !ok {
			return nil, false
		}
		return newB(), true
	}, types
}

// Kind is the bindings kind with the built-in backends, for
// components.NewManager.
func Kind(log *slog.Logger) components.Kind[*bindings.Instance] {
	newB, types := New(log)
	return bindings.Kind(newB, types)
}
