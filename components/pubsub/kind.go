package pubsub

import (
	"context"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of pub/sub components.
const Category = "pubsub"

// Kind describes pub/sub brokers to a components.Manager. newPubSub makes
// an uninitialised broker for a spec.type (false if unknown); types lists
// the known ones. Backends mark metadata errors with components.Permanent,
// so only connection failures are retried.
func Kind(newPubSub func(typ string) (PubSub, bool), types []string) components.Kind[PubSub] {
	return components.Kind[PubSub]{
		Category: Category,
		Types:    types,
		New:      newPubSub,
		Init: func(ctx context.Context, ps PubSub, md components.Metadata) error {
			return ps.Init(ctx, md)
		},
		Close:        func(ps PubSub) error { return ps.Close() },
		Capabilities: func(ps PubSub) []string { return Capabilities(ps.Features()) },
	}
}
