package statetest

import (
	"context"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// Gated is a state store whose Init waits until Release is closed (or its
// context ends), for tests of what waits on a store's first Init.
type Gated struct {
	state.Store
	Release <-chan struct{}
}

// Init waits for Release, then initialises the store.
func (g Gated) Init(ctx context.Context, md components.Metadata) error {
	select {
	case <-g.Release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Store.Init(ctx, md)
}

// GatedManager returns a state store manager for appID that knows the
// type "state.gated": a store made by newStore whose Init waits for
// release. It is closed when the test ends. Apply GatedComponent to load
// one.
func GatedManager(t testing.TB, appID string, newStore func() state.Store, release <-chan struct{}) *components.Manager[state.Store] {
	newFn, types := components.FactoryFromMap(map[string]func() state.Store{
		"state.gated": func() state.Store { return Gated{Store: newStore(), Release: release} },
	})
	m := components.NewManager(components.Kind[state.Store]{Category: "state", Types: types, New: newFn,
		Init:  func(ctx context.Context, s state.Store, md components.Metadata) error { return s.Init(ctx, md) },
		Close: func(s state.Store) error { return s.Close() },
	}, components.ManagerOptions{Resolve: components.Env{AppID: appID}.Resolve, Grace: time.Millisecond})
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// GatedComponent is a component named "store" of GatedManager's type.
func GatedComponent() components.Component {
	return components.Component{Name: "store", Type: "state.gated", InitTimeout: components.DefaultInitTimeout}
}
