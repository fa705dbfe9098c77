// Package configuration defines the configuration building block (Dapr's
// configuration.* components): the Store interface its backends implement
// (read items by key, follow their changes) and the Kind a
// components.Manager runs them with.
//
// Backends live in sub-packages and import only this package and
// components; builtin lists them for cmd; configurationtest is the
// contract suite every backend passes.
package configuration

import (
	"context"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of configuration components.
const Category = "configuration"

// Item is one configuration value, with Dapr's JSON names.
type Item struct {
	Value    string            `json:"value,omitempty"`
	Version  string            `json:"version,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Handler receives changed items, by key; a deleted key comes with an
// empty Item (Redis) or the deleted row (PostgreSQL, as its trigger sends
// it). An error is logged by the caller; the subscription goes on.
type Handler func(ctx context.Context, items map[string]*Item) error

// Store is a configuration backend. Implementations must be safe for
// concurrent use after Init returns.
type Store interface {
	Init(ctx context.Context, md components.Metadata) error
	// Get returns the items of keys (every item when keys is empty);
	// missing keys are left out.
	Get(ctx context.Context, keys []string, md map[string]string) (map[string]*Item, error)
	// Subscribe starts following keys (every key when empty) and returns
	// once the subscription is in place; changes go to h until ctx ends.
	// When Subscribe returns an error nothing was started.
	Subscribe(ctx context.Context, keys []string, md map[string]string, h Handler) error
	// Close stops every subscription and releases the store.
	Close() error
}

// Kind describes configuration stores to a components.Manager.
func Kind(newStore func(typ string) (Store, bool), types []string) components.Kind[Store] {
	return components.Kind[Store]{
		Category: Category,
		Types:    types,
		New:      newStore,
		Init:     func(ctx context.Context, s Store, md components.Metadata) error { return s.Init(ctx, md) },
		Close:    func(s Store) error { return s.Close() },
	}
}
