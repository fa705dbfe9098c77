// Package builtin lists the conversation components compiled into the
// sidecar, by Dapr component type. cmd/tandemd builds the list once and
// passes it to the component loader.
package builtin

import (
	"maps"
	"slices"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/conversation"
	"github.com/tandemrun/tandem/components/conversation/echo"
)

// Factories returns a new map from Dapr component type to a constructor of
// an uninitialised model.
func Factories() map[string]func() conversation.Model {
	return map[string]func() conversation.Model{
		echo.Type: func() conversation.Model { return echo.New() },
	}
}

// Kind is the conversation kind with the built-in models, for
// components.NewManager.
func Kind() components.Kind[conversation.Model] {
	f := Factories()
	return conversation.Kind(func(typ string) (conversation.Model, bool) {
		newM, ok := f[typ]
		if !ok {
			return nil, false
		}
		return newM(), true
	}, slices.Sorted(maps.Keys(f)))
}
